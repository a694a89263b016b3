"""The agent's RFC 3161 client for PAdES B-T (pyHanko ``TimeStamper`` over httpx).

Every token is checked before pyHanko embeds it: the TSA's status, the nonce of the
request (RFC 3161 §2.4.1), the message imprint, and the token's signature with a TSA
certificate chaining to the configured roots with ``id-kp-timeStamping`` (pyHanko's
validation, offline). The hub validates the signed PDF again on receipt (CON-5).

TSA maintenance windows (WIN-3): ``fixed BEGIN END`` entries (ISO 8601, JST unless an
offset is given; the hub's connector uses the same notation). Inside one, nothing is sent
and :class:`TsaInMaintenance` says when to sign again; the job stays pending at the hub.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

__all__ = ["AgentTimeStamper", "TsaError", "TsaInMaintenance", "parse_windows"]

_GRANTED = ("granted", "granted_with_mods")
_JST = dt.timezone(dt.timedelta(hours=9))


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default verifying context, made once per process and shared (thread-safe).

    Each signature runs on its own event loop (pyHanko's sync API), so the TSA's client
    cannot be kept; loading the CA store for a client per timestamp would cost more than
    the rest of the timestamp (docs/performance.md)."""
    return httpx.create_ssl_context()


class TsaError(Exception):
    """The TSA could not be reached or its answer was refused (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TsaInMaintenance(Exception):
    """WIN-3: the TSA is in an announced maintenance window until ``until`` (UTC)."""

    def __init__(self, until: dt.datetime) -> None:
        super().__init__(f"TSA in maintenance until {until.isoformat()}")
        self.until = until


@dataclass(frozen=True)
class FixedWindow:
    begin: dt.datetime
    end: dt.datetime


def _aware(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=_JST)


def parse_windows(text: str) -> tuple[FixedWindow, ...]:
    """A JSON list of ``"fixed BEGIN END"`` (empty text: none)."""
    if not text.strip():
        return ()
    out = []
    for entry in json.loads(text):
        kind, begin, end = str(entry).split()
        if kind != "fixed":
            raise ValueError(f"the agent knows fixed windows only, not {kind!r}")
        window = FixedWindow(_aware(begin), _aware(end))
        if not window.begin < window.end:
            raise ValueError("a fixed window needs begin < end")
        out.append(window)
    return tuple(out)


class AgentTimeStamper(TimeStamper):
    """Timestamps from the TSA at ``url``, each token checked against ``roots``."""

    def __init__(self, url: str, roots: Sequence[x509.Certificate],
                 windows: Iterable[FixedWindow] = (), timeout_s: float = 10) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        if not roots:
            raise ValueError("the TSA needs trust roots (--trust-roots)")
        self.url = url
        self.roots = tuple(roots)
        self._anchors = [asn1_x509.Certificate.load(r.public_bytes(Encoding.DER))
                         for r in self.roots]
        self.windows = tuple(windows)
        self.timeout_s = timeout_s

    def check_open(self, now: dt.datetime) -> None:
        """Raise :class:`TsaInMaintenance` inside a window (WIN-3)."""
        for window in self.windows:
            if window.begin <= now < window.end:
                raise TsaInMaintenance(window.end.astimezone(dt.UTC))

    def _context(self) -> ValidationContext:
        # A new context per token: it validates at the moment it is made.
        return ValidationContext(trust_roots=self._anchors, allow_fetching=False,
                                 revocation_mode="soft-fail")

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        self.check_open(dt.datetime.now(dt.UTC))
        nonce = secrets.randbits(63) | (1 << 62)
        request = tsp.TimeStampReq({
            "version": 1,
            "message_imprint": tsp.MessageImprint({
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": md_algorithm}),
                "hashed_message": message_digest}),
            "nonce": nonce,
            "cert_req": True,
        })
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=_tls()) as http:
                reply = await http.post(self.url, content=request.dump(),
                                        headers={"Content-Type": "application/timestamp-query"})
            reply.raise_for_status()
            response = tsp.TimeStampResp.load(reply.content)
            status = response["status"]
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            raise TsaError(f"no usable answer from the TSA: {type(exc).__name__}") from exc
        if status["status"].native not in _GRANTED:
            raise TsaError(f"TSA refused the request: {status['status'].native}")
        token: cms.ContentInfo = response["time_stamp_token"]
        await self._verify(token, message_digest, md_algorithm, nonce)
        return cms.ContentInfo.load(token.dump())

    async def _verify(self, token: cms.ContentInfo, digest: bytes, md_algorithm: str,
                      nonce: int) -> None:
        signed_data = token["content"]
        info = signed_data["encap_content_info"]["content"].parsed
        if not isinstance(info, tsp.TSTInfo) or info["nonce"].native != nonce:
            raise TsaError("the token does not answer this request (nonce)")
        imprint = info["message_imprint"]
        if (imprint["hash_algorithm"]["algorithm"].native != md_algorithm
                or imprint["hashed_message"].native != digest):
            raise TsaError("the token's message imprint is not the signed digest")

        def expected(algorithm: str) -> bytes:
            return digest if algorithm == md_algorithm else b""

        try:
            kwargs = await validate_tst_signed_data(signed_data, self._context(), expected)
        except SignatureValidationError as exc:
            raise TsaError(f"token signature invalid: {exc.failure_message}") from exc
        found = TimestampSignatureStatus(**kwargs)
        if not (found.intact and found.valid and found.trusted):
            raise TsaError("the token's TSA certificate is not trusted for timestamping")
