"""Settings of the mail connector (SMTP), from ``HUB_MAIL_*`` environment variables."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from connectors._shared.settings import ConnectorSettings, run_dir
from schemas.mail import MailAddress

__all__ = ["MailSettings"]

class MailSettings(ConnectorSettings):
    """The SMTP relay, the sender, and how documents are attached or linked (CON-4)."""

    model_config = SettingsConfigDict(env_prefix="HUB_MAIL_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: MailAddress = "no-reply@procurement-hub.example"
    from_name: str = Field(default="電子調達ハブ", max_length=60)
    reply_to: MailAddress | None = Field(
        default=None, description="The Reply-To of every mail (where answers go), or none.")
    system_name: str = Field(
        default="電子調達ハブ", max_length=60,
        description="Footer name when a request carries no system_name value.")
    link_valid_days: int = Field(default=10, ge=1, description="CON-4: download links, 10 days.")
    documents_dir: Path = Field(default_factory=lambda: run_dir() / "documents",
                                description="Signed PDFs to attach or link (CON-4).")
    documents_base_url: str = "http://127.0.0.1:8000/documents"
    link_key: SecretStr = SecretStr("change-me-local-default-only")

    @field_validator("from_name", "system_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # These go into the From header and every footer: no header injection from config.
        if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
            raise ValueError("must not contain line breaks or control characters")
        return value
