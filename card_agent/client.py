"""The agent's side of the hub gateway (hub/gateway/routes.py), over HTTPS with httpx.

:func:`hub_http_client` is how the agent reaches the hub: ``https://`` with the hub's
certificate verified against the system's CA store or a configured CA bundle
(``--ca-bundle`` / ``CARD_AGENT_CA_BUNDLE``, e.g. the city's own CA); plain ``http://``
is refused except to this PC itself (loopback), where nothing crosses a network.

The card proves itself by signing a fresh challenge (``CARD_PROOF_CONTEXT + nonce``,
SHA-256, RSA PKCS#1 v1.5) after its PIN was verified; only the signature and the
certificate leave the PC, never the PIN or the key. Refusals come back as
:class:`GatewayRefusedError` carrying the hub's rule violations (rule ID, Japanese, English).

A job's PDF comes as ``application/pdf`` bytes and is used only if its SHA-256 is the one
the job announced (``document_sha256``, and the response's ``Repr-Digest``), else
:class:`DocumentMismatchError` (AGT-4); the signed PDF goes back as ``application/pdf``
with its ``Content-Digest`` (RFC 9530), which the hub checks.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from card_agent.card import CardSession
from card_agent.wire import CARD_PROOF_CONTEXT, RuleViolation

__all__ = ["CARD_PROOF_CONTEXT", "DEFAULT_HUB_URL", "DocumentMismatchError", "GatewayClient",
           "GatewayRefusedError", "InsecureHubUrlError", "hub_http_client"]

DEFAULT_HUB_URL = "http://127.0.0.1:8480"
"""A hub on this PC (``hub run``'s default port); any other hub is reached over https."""


class InsecureHubUrlError(ValueError):
    """The hub's URL would send card proofs and passwords over a network in clear."""


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hub_http_client(url: str, *, ca_bundle: Path | None = None,
                    timeout: float = 60) -> httpx.Client:
    """An httpx client for the hub at ``url`` (see the module docstring)."""
    parsed = httpx.URL(url)
    if parsed.scheme == "http" and not _loopback(parsed.host):
        raise InsecureHubUrlError(
            f"refusing http:// to {parsed.host}: use https:// (plain http only to this PC) / "
            "このPC以外のハブには https:// で接続してください")
    if parsed.scheme not in ("http", "https"):
        raise InsecureHubUrlError(f"unsupported scheme {parsed.scheme!r}: use https://")
    # The system's CA store (OpenSSL's default paths), or only the configured bundle.
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    return httpx.Client(base_url=url, timeout=timeout, verify=context)


class GatewayRefusedError(Exception):
    """The hub refused a request; ``violations`` say which rules and what to do."""

    def __init__(self, status: int, violations: Sequence[RuleViolation]) -> None:
        super().__init__("; ".join(f"{v.rule_id}: {v.message_en}" for v in violations)
                         or f"HTTP {status}")
        self.status = status
        self.violations = tuple(violations)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der(cert: x509.Certificate) -> str:
    return _b64(cert.public_bytes(Encoding.DER))


class DocumentMismatchError(Exception):
    """AGT-4: what the hub sent as a job's PDF is not the document it announced; nothing is
    shown or signed."""

    def __init__(self, detail_ja: str, detail_en: str) -> None:
        self.violation = RuleViolation(
            rule_id="AGT-4",
            message_ja=f"ハブから受け取った文書が署名依頼の文書と一致しません({detail_ja})。"
                       "表示も署名もしていません。",
            message_en=f"The document received from the hub is not the job's document "
                       f"({detail_en}); nothing was shown or signed.",
            next_step_ja="ハブのページを再読み込みして、もう一度署名を始めてください。"
                         "続く場合は発注者に連絡してください。",
            next_step_en="Reload the hub's page and start the signature again; if it "
                         "persists, contact the procuring entity.")
        super().__init__(f"AGT-4: {self.violation.message_en}")


def _repr_sha256(header: str | None) -> bytes | None:
    """The ``sha-256`` of a ``Repr-Digest`` field (RFC 9530), None when absent."""
    for member in (header or "").split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() == "sha-256":
            value = value.strip()
            try:
                return base64.b64decode(value.strip(":"), validate=True)
            except ValueError:
                return b""  # present but unreadable: matches no digest
    return None


class GatewayClient:
    """Talks to one hub. ``http`` is any httpx.Client (its base_url is the hub's)."""

    def __init__(self, http: httpx.Client, chain: Sequence[x509.Certificate] = (),
                 where: Mapping[str, str] | None = None) -> None:
        self.http = http
        self.chain = tuple(chain)
        self.where = dict(where or {})
        """``procuring_entity``, ``system`` and ``domain`` sessions are opened for."""
        self.token: str | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        reply = self.http.request(method, path, headers=headers, **kwargs)
        if reply.status_code >= 400:
            self._refused(reply)
        return reply.json()

    @staticmethod
    def _refused(reply: httpx.Response) -> NoReturn:
        try:
            detail = reply.json().get("detail", {})
            found = detail.get("violations", []) if isinstance(detail, dict) else []
        except ValueError:
            found = []
        raise GatewayRefusedError(reply.status_code,
                                  [RuleViolation.from_dict(v) for v in found
                                   if isinstance(v, dict)])

    def prove(self, card: CardSession) -> dict[str, Any]:
        """A fresh challenge answered by ``card`` (its PIN must be verified already)."""
        challenge = self._call("POST", "/gateway/challenges")
        message = CARD_PROOF_CONTEXT + base64.b64decode(challenge["nonce"])
        signature = card.sign_digest(hashlib.sha256(message).digest(), "sha256")
        return {"challenge_id": challenge["challenge_id"], "certificate": _der(card.certificate()),
                "chain": [_der(c) for c in self.chain], "signature": _b64(signature)}

    def login(self, card: CardSession, where: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Log in with the card for one entity, system and domain (``where``, else the
        client's); keeps the session token for the next calls."""
        self.token = None
        body = {**self.prove(card), **(where if where is not None else self.where)}
        session: dict[str, Any] = self._call("POST", "/gateway/sessions", json=body)
        self.token = session["token"]
        return session

    def register(self, card: CardSession, fields: dict[str, Any]) -> str:
        body = {**fields, "proof": self.prove(card)}
        return str(self._call("POST", "/gateway/registrations", json=body)["request_id"])

    def change(self, card: CardSession, fields: dict[str, Any]) -> str:
        body = {**fields, "proof": self.prove(card)}
        return str(self._call("POST", "/gateway/changes", json=body)["request_id"])

    def renew(self, old_proof: dict[str, Any], new_proof: dict[str, Any],
              fields: dict[str, Any]) -> str:
        """Submit a renewal from two proofs made old card first, then new (RNW-6)."""
        body = {**fields, "old_proof": old_proof, "new_proof": new_proof}
        return str(self._call("POST", "/gateway/renewals", json=body)["request_id"])

    def outcome(self, request_id: str, wait_s: float = 0.0, poll_s: float = 0.5) -> dict[str, Any]:
        """The pipeline's answer; waits up to ``wait_s`` while it is still pending."""
        deadline = time.monotonic() + wait_s
        while True:
            answer: dict[str, Any] = self._call("GET", f"/gateway/requests/{request_id}")
            if answer["status"] != "pending" or time.monotonic() >= deadline:
                return answer
            time.sleep(poll_s)

    def jobs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/gateway/jobs")
        return found

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/gateway/jobs/{job_id}")
        return found

    def document(self, job: Mapping[str, Any]) -> bytes:
        """The PDF of ``job`` (as :meth:`job` returned it), checked against the SHA-256 the
        job announced; raises :class:`DocumentMismatchError` (AGT-4) otherwise."""
        headers = {"Accept": "application/pdf"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        reply = self.http.get(f"/gateway/jobs/{job['id']}/document", headers=headers)
        if reply.status_code >= 400:
            self._refused(reply)
        kind = reply.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/pdf":
            raise DocumentMismatchError(f"形式が PDF ではありません: {kind[:60] or 'なし'}",
                                        f"not application/pdf but {kind[:60] or 'none'!r}")
        pdf = reply.content
        digest = hashlib.sha256(pdf).digest()
        if digest.hex() != str(job.get("document_sha256", "")).lower():
            raise DocumentMismatchError("SHA-256 が署名依頼のものと異なります",
                                        "its SHA-256 is not the job's document_sha256")
        announced = _repr_sha256(reply.headers.get("repr-digest"))
        if announced is not None and announced != digest:
            raise DocumentMismatchError("SHA-256 が Repr-Digest と異なります",
                                        "its SHA-256 is not the response's Repr-Digest")
        return pdf

    def submit_signed(self, job_id: str, pdf: bytes) -> dict[str, Any]:
        digest = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
        done: dict[str, Any] = self._call("PUT", f"/gateway/jobs/{job_id}/signed", content=pdf,
                                          headers={"Content-Type": "application/pdf",
                                                   "Content-Digest": f"sha-256=:{digest}:"})
        return done
