"""Settings of the online application system (オンライン申請システム) connector.

Environment prefix ``HUB_APPLICATION_``. The API token and the webhook secret are
secrets: never shown in a repr or a log.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings
from connectors.dsure.keynotice import ParseLimits

__all__ = ["ApplicationSettings"]


class ApplicationSettings(ConnectorSettings):
    """``HUB_APPLICATION_BASE_URL``, ``HUB_APPLICATION_API_TOKEN``, ..."""

    model_config = SettingsConfigDict(env_prefix="HUB_APPLICATION_", extra="ignore", frozen=True)

    base_url: str = Field(default="http://127.0.0.1:8782",
                          description="The system's API (the reference peer by default).")
    api_token: SecretStr = Field(default=SecretStr("local-application-token"))
    webhook_secret: SecretStr = Field(default=SecretStr("local-application-webhook"),
                                      description="HMAC-SHA256 key of the submission webhook.")
    webhook_tolerance_s: int = Field(default=300, gt=0,
                                     description="Oldest webhook timestamp accepted (replays).")
    poll_limit: int = Field(default=50, ge=1, le=500, description="Applications per poll.")
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    notice_cpu_s: int = Field(default=5, ge=1, le=120,
                              description="CPU seconds one 認証キーのお知らせ parse may use.")
    notice_memory_mb: int = Field(default=256, ge=64, le=8192,
                                  description="Address space of the parsing process (MB).")
    notice_timeout_s: float = Field(default=20.0, gt=0, le=600,
                                    description="Wall-clock limit of one parse.")
    notice_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0,
                                  description="Largest 認証キーのお知らせ PDF read (SUR-1).")

    def notice_limits(self) -> ParseLimits:
        """The limits of one key-notice parse in its child process (SUR-1)."""
        return ParseLimits(cpu_s=self.notice_cpu_s, memory_mb=self.notice_memory_mb,
                           timeout_s=self.notice_timeout_s, max_bytes=self.notice_max_bytes)
