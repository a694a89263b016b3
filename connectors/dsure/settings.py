"""Settings of the D・Sure (保証確認サービス) connector: environment prefix ``HUB_DSURE_``.

Besides the shared timeout, retry, circuit-breaker and maintenance settings
(:class:`connectors._shared.ConnectorSettings`), where D・Sure answers and the
city's access token for it. The token is a secret: never shown in a repr or log.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors._shared import ConnectorSettings

__all__ = ["LOCAL_ISSUER_TOKEN", "DSurePeerSettings", "DSureSettings"]

LOCAL_ISSUER_TOKEN = "local-surety-issuer"  # noqa: S105 -- the loopback reference's default


class DSureSettings(ConnectorSettings):
    """``HUB_DSURE_BASE_URL``, ``HUB_DSURE_API_TOKEN``, ``HUB_DSURE_TIMEOUT_S``, ..."""

    model_config = SettingsConfigDict(env_prefix="HUB_DSURE_", extra="ignore", frozen=True)

    base_url: str = Field(default="http://127.0.0.1:8781",
                          description="D・Sure's lookup service (the reference peer by default).")
    api_token: SecretStr = Field(default=SecretStr("local-dsure-token"),
                                 description="The city's access token for D・Sure.")
    max_notice_bytes: int = Field(default=5 * 1024 * 1024, gt=0,
                                  description="Largest 認証キーのお知らせ PDF read (SUR-1).")


class DSurePeerSettings(BaseSettings):
    """The reference D・Sure peer's own setting (``hub peers``; production runs no peer):
    ``HUB_DSURE_ISSUER_TOKEN``, the token surety companies publish certificates with."""

    model_config = SettingsConfigDict(env_prefix="HUB_DSURE_", extra="ignore", frozen=True)

    issuer_token: SecretStr = Field(
        default=SecretStr(LOCAL_ISSUER_TOKEN),
        description="The surety companies' publishing token on the reference peer.")
