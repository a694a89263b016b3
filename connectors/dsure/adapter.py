"""The outbound adapter to D・Sure: one lookup call, its answers classified (SUR-1, SUR-2).

One attempt per call: retries, the circuit breaker, the deadline and the
maintenance calendar are the :class:`connectors._shared.Guard`'s. A refusal
(unknown number, wrong key) is permanent and names SUR-1 with what the
contractor can do; a wrong city token is permanent with no rule (an operator
fixes the setting); everything else unusable is transient.
"""

from __future__ import annotations

import httpx

from connectors._shared import PermanentPeerError, TransientPeerError
from connectors._shared.httpkit import health_status, json_body, raise_for_peer
from connectors.dsure.mapping import PeerFormatError, certificate_from_peer, lookup_request
from connectors.dsure.settings import DSureSettings
from schemas.rejection import RuleViolation
from schemas.surety import SuretyCertificate

__all__ = ["NAME", "DSureAdapter"]

NAME = "dsure"

_NOT_FOUND = RuleViolation(
    rule_id="SUR-1",
    message_ja="この保証契約番号の電子証書は D・Sure に掲載されていません。",
    message_en="D・Sure has no electronic certificate under this 保証契約番号.",
    next_step_ja="「認証キーのお知らせ」の保証契約番号を確認し、"
    "誤りがなければ保証会社にお問い合わせください。",
    next_step_en="Check the 保証契約番号 on the 認証キーのお知らせ; "
    "if it is right, ask the surety company.",
    field="保証契約番号",
)
_KEY_MISMATCH = RuleViolation(
    rule_id="SUR-1",
    message_ja="認証キーが保証契約番号と一致しません。",
    message_en="The 認証キー does not match the 保証契約番号.",
    next_step_ja="最新の「認証キーのお知らせ」PDF を加工せずに提出し直してください。",
    next_step_en="Submit the latest 認証キーのお知らせ PDF again, unchanged.",
    field="認証キー",
)


class DSureAdapter:
    """httpx client for DSURE-API (see ``connectors.dsure.peer``)."""

    def __init__(self, settings: DSureSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_s,
            headers={"Accept": "application/json"},
        )

    async def lookup(self, contract_number: str, auth_key: str) -> SuretyCertificate:
        """The certificate for this number and key: one call, classified errors."""
        response = await self._client.post(
            "/api/v1/certificates/lookup",
            json=lookup_request(contract_number, auth_key),
            headers={"Authorization": f"Bearer {self._settings.api_token.get_secret_value()}"},
        )
        raise_for_peer(NAME, "lookup", response)
        if response.status_code == 404:
            raise PermanentPeerError(NAME, "lookup: unknown 保証契約番号", (_NOT_FOUND,))
        if response.status_code == 403:
            raise PermanentPeerError(NAME, "lookup: 認証キー does not match", (_KEY_MISMATCH,))
        if response.status_code in (401, 407):
            raise PermanentPeerError(NAME, "lookup: D・Sure refused the city's token "
                                     "(check HUB_DSURE_API_TOKEN)")
        if response.status_code != 200:
            raise PermanentPeerError(NAME, f"lookup: unexpected HTTP {response.status_code}")
        body = json_body(NAME, "lookup", response)
        try:
            return certificate_from_peer(body)
        except PeerFormatError as exc:
            raise TransientPeerError(NAME, f"lookup: unreadable certificate: {exc}") from None

    async def ping(self) -> str:
        return await health_status(NAME, self._client)

    async def aclose(self) -> None:
        await self._client.aclose()
