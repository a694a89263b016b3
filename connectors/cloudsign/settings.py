"""Settings of the CloudSign connector: environment prefix ``HUB_CLOUDSIGN_``.

``client_id`` is CloudSign's API credential (it buys an access token at
``POST /token``): a secret, never in a repr or a log. ``document_dir`` is where
the signed PDFs and 合意締結証明書 are kept (CON-7) by the file document store.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings
from connectors._shared.settings import run_dir

__all__ = ["CloudSignSettings"]


class CloudSignSettings(ConnectorSettings):
    """``HUB_CLOUDSIGN_BASE_URL``, ``HUB_CLOUDSIGN_CLIENT_ID``, ``HUB_CLOUDSIGN_DOCUMENT_DIR``."""

    model_config = SettingsConfigDict(env_prefix="HUB_CLOUDSIGN_", extra="ignore", frozen=True)

    base_url: str = Field(default="http://127.0.0.1:8783",
                          description="CloudSign Web API (the reference server by default).")
    client_id: SecretStr = Field(default=SecretStr("local-cloudsign-client"))
    document_dir: Path = Field(default_factory=lambda: run_dir() / "documents" / "cloudsign")
    token_margin_s: float = Field(default=60.0, ge=0,
                                  description="Renew the access token this long before expiry.")
    max_download_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
