"""Settings of the CloudSign connector: environment prefix ``HUB_CLOUDSIGN_``.

``client_id`` is CloudSign's API credential (it buys an access token at
``POST /token``): a secret, never in a repr or a log. ``document_dir`` is where
the signed PDFs and 合意締結証明書 are kept (CON-7) by the file document store.

``webhook_token`` is the secret last segment of the hook URL registered in
CloudSign (``/webhooks/cloudsign/<token>``; CloudSign signs nothing, so the path is
the credential). The embedded default is for the reference peers only:
:meth:`CloudSignSettings.webhook_token_weak` says when the token is that default or
shorter than :data:`MIN_WEBHOOK_TOKEN_CHARS`, for a production check to refuse.
``webhook_sources`` optionally restricts the hook to CloudSign's addresses (CIDRs).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings
from connectors._shared.settings import run_dir

__all__ = ["DEFAULT_WEBHOOK_TOKEN", "MIN_WEBHOOK_TOKEN_CHARS", "CloudSignSettings"]

DEFAULT_WEBHOOK_TOKEN = "local-cloudsign-webhook-token"  # noqa: S105 -- reference peers only
MIN_WEBHOOK_TOKEN_CHARS = 32
"""At least 32 characters (e.g. ``secrets.token_urlsafe(32)`` gives 43)."""


class CloudSignSettings(ConnectorSettings):
    """``HUB_CLOUDSIGN_BASE_URL``, ``HUB_CLOUDSIGN_CLIENT_ID``, ``HUB_CLOUDSIGN_DOCUMENT_DIR``,
    ``HUB_CLOUDSIGN_WEBHOOK_TOKEN``, ``HUB_CLOUDSIGN_WEBHOOK_SOURCES``, ..."""

    model_config = SettingsConfigDict(env_prefix="HUB_CLOUDSIGN_", extra="ignore", frozen=True)

    base_url: str = Field(default="http://127.0.0.1:8783",
                          description="CloudSign Web API (the reference server by default).")
    client_id: SecretStr = Field(default=SecretStr("local-cloudsign-client"))
    document_dir: Path = Field(default_factory=lambda: run_dir() / "documents" / "cloudsign")
    token_margin_s: float = Field(default=60.0, ge=0,
                                  description="Renew the access token this long before expiry.")
    max_download_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    webhook_token: SecretStr = Field(
        default=SecretStr(DEFAULT_WEBHOOK_TOKEN),
        description="Secret last path segment of the hook URL given to CloudSign.")
    webhook_sources: tuple[str, ...] = Field(
        default=(), description="If set, only these addresses (CIDRs) may call the hook.")
    webhook_max_bytes: int = Field(default=16 * 1024, gt=0, le=1024 * 1024,
                                   description="Largest webhook body read.")
    webhook_max_depth: int = Field(default=8, ge=1, le=64,
                                   description="Deepest JSON nesting of a webhook body.")

    @field_validator("webhook_sources")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return value

    def webhook_token_weak(self) -> bool:
        """The token is the embedded default or shorter than MIN_WEBHOOK_TOKEN_CHARS
        (a production start must refuse it)."""
        token = self.webhook_token.get_secret_value()
        return token == DEFAULT_WEBHOOK_TOKEN or len(token) < MIN_WEBHOOK_TOKEN_CHARS
