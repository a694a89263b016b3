"""The TSA connector: RFC 3161 timestamps for the card agent and the city's signer.

:class:`TsaConnector` is what the hub holds (guard, health, settings).
:meth:`TsaConnector.timestamper` gives a pyHanko ``TimeStamper`` whose every call goes
through the guard: the maintenance calendar first (WIN-3: inside a TSA window nothing is
sent and :class:`~connectors._shared.errors.PeerInMaintenance` says when to resume; the
work waits, it is not failed), then the circuit breaker, deadline and retries.

Every token is checked before anyone uses it: the response status and the nonce of the
request (RFC 3161 §2.4.1, §2.4.2), then :func:`~connectors.tsa.verify.verify_token`
(message imprint, signature, TSA certificate chain).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from asn1crypto import algos, cms, tsp
from cryptography import x509
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps.api import TimeStamper

from connectors._shared.base import Guard
from connectors._shared.errors import PermanentPeerError, TransientPeerError
from connectors._shared.health import Health
from connectors.tsa.adapter import TsaAdapter
from connectors.tsa.settings import TsaSettings
from connectors.tsa.verify import TokenRejectedError, verify_token

__all__ = ["CONNECTOR", "HubTimeStamper", "TsaConnector"]

CONNECTOR = "tsa"
_GRANTED = ("granted", "granted_with_mods")


class TsaConnector:
    """One TSA: settings, guard, transport, and the roots its certificate chains to."""

    name = CONNECTOR

    def __init__(self, settings: TsaSettings, roots: Sequence[x509.Certificate] | None = None,
                 *, guard: Guard | None = None) -> None:
        self.settings = settings
        self.roots = tuple(roots) if roots is not None else settings.load_trust_roots()
        if not self.roots:
            raise ValueError("the TSA connector needs trust roots (HUB_TSA_TRUST_ROOTS)")
        self.guard = guard or Guard.from_settings(CONNECTOR, settings)
        self.adapter = TsaAdapter(CONNECTOR, settings.url, settings.timeout_s)
        self._timestamper: HubTimeStamper | None = None

    def timestamper(self) -> HubTimeStamper:
        """The pyHanko TimeStamper bound to this connector.

        One per connector: pyHanko sizes the signature container with a first "dummy"
        token and caches it in the TimeStamper, so reusing it saves a TSA round trip on
        every later signature.
        """
        if self._timestamper is None:
            self._timestamper = HubTimeStamper(self)
        return self._timestamper

    async def timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        """Request and check one token for ``message_digest``."""
        return await HubTimeStamper(self).async_timestamp(message_digest, md_algorithm)

    async def health(self) -> Health:
        async def probe() -> str:
            await self.timestamp(b"\0" * 32, "sha256")
            return "token issued and verified"

        return await self.guard.probe(probe)

    async def aclose(self) -> None:
        """Nothing pooled: each call opens and closes its own HTTP client."""


def _request(message_digest: bytes, md_algorithm: str) -> tuple[int, tsp.TimeStampReq]:
    # RFC 3161 §2.4.1: a large random nonce ties the answer to this request.
    nonce = secrets.randbits(63) | (1 << 62)
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": tsp.MessageImprint(
                {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": md_algorithm}),
                    "hashed_message": message_digest,
                }
            ),
            "nonce": nonce,
            # RFC 3161 §2.4.1: ask for the TSA certificate so the token can be checked.
            "cert_req": True,
        }
    )
    return nonce, request


def _granted_token(response: tsp.TimeStampResp, nonce: int) -> cms.ContentInfo:
    status = response["status"]
    if status["status"].native not in _GRANTED:
        texts = "; ".join(status["status_string"].native or [])
        raise TokenRejectedError(f"TSA refused the request: {status['status'].native} {texts}")
    token: cms.ContentInfo = response["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    if info["nonce"].native != nonce:
        raise TokenRejectedError("nonce in the token is not the nonce of the request")
    return token


class HubTimeStamper(TimeStamper):
    """pyHanko's TimeStamper over :class:`TsaConnector` (guarded, every token verified)."""

    def __init__(self, connector: TsaConnector) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.connector = connector

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        connector = self.connector
        nonce, request = _request(message_digest, md_algorithm)

        async def call() -> tuple[bytes, tsp.TimeStampResp]:
            body = await connector.adapter.post(request.dump())
            try:
                # Loading checks the outer length (a cut answer fails here); the status and
                # the token down to its TSTInfo are what _granted_token reads. Not .native
                # of it all: that would convert every certificate of the token.
                response = tsp.TimeStampResp.load(body)
                if response["status"]["status"].native in _GRANTED:  # else no token
                    token = response["time_stamp_token"]
                    token["content"]["encap_content_info"]["content"].parsed  # noqa: B018
            except (ValueError, TypeError) as exc:
                # Not a TimeStampResp at all (a proxy's error page, a cut answer): the TSA
                # side is broken for now, so it is retried like an outage.
                raise TransientPeerError(CONNECTOR, "the answer is not an RFC 3161 "
                                         f"TimeStampResp ({len(body)} bytes): {exc}") from exc
            return body, response

        body, response = await connector.guard.call(call, what="timestamp")
        try:
            token = _granted_token(response, nonce)
            await verify_token(token, message_digest, md_algorithm, connector.roots)
        except (TokenRejectedError, SigningError, ValueError, KeyError) as exc:
            raise PermanentPeerError(CONNECTOR, f"TSA answer refused: {exc}") from exc
        # Handed on unparsed, from the answer's bytes: asn1crypto re-encodes every parsed
        # level of a token on each of pyHanko's dumps and copies, and so would dumping the
        # verified token here; a token loaded from bytes dumps them as they are.
        return cms.ContentInfo.load(tsp.TimeStampResp.load(body)["time_stamp_token"].dump())
