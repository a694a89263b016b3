"""Settings of the D・Sure (保証確認サービス) connector: environment prefix ``HUB_DSURE_``.

Besides the shared timeout, retry, circuit-breaker and maintenance settings
(:class:`connectors._shared.ConnectorSettings`), where D・Sure answers and the
city's access token for it. The token is a secret: never shown in a repr or log.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings

__all__ = ["DSureSettings"]


class DSureSettings(ConnectorSettings):
    """``HUB_DSURE_BASE_URL``, ``HUB_DSURE_API_TOKEN``, ``HUB_DSURE_TIMEOUT_S``, ..."""

    model_config = SettingsConfigDict(env_prefix="HUB_DSURE_", extra="ignore", frozen=True)

    base_url: str = Field(default="http://127.0.0.1:8781",
                          description="D・Sure's lookup service (the reference peer by default).")
    api_token: SecretStr = Field(default=SecretStr("local-dsure-token"),
                                 description="The city's access token for D・Sure.")
    max_notice_bytes: int = Field(default=5 * 1024 * 1024, gt=0,
                                  description="Largest 認証キーのお知らせ PDF read (SUR-1).")
