"""Settings from ``HUB_DOCMGMT_*``; the defaults aim at the reference peer on loopback."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings
from connectors._shared.settings import run_dir

__all__ = ["DocmgmtSettings"]


class DocmgmtSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_DOCMGMT_", extra="ignore", frozen=True)

    base_url: str = "http://127.0.0.1:8597"
    """The WebDAV share's URL."""
    root: str = "contracts"
    """The collection under which each case gets its folder."""
    username: str = "hub"
    password: SecretStr = SecretStr("local-docmgmt-password")
    documents_dir: Path = Field(default_factory=lambda: run_dir() / "documents" / "cloudsign")
    """Where the hub keeps the signed PDFs: ``HUB_CLOUDSIGN_DOCUMENT_DIR``."""
