"""Settings of the ERP connector (SOAP), from ``HUB_ERP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared.settings import ConnectorSettings

__all__ = ["SHIPPED_WSDL", "ErpSettings"]

SHIPPED_WSDL = Path(__file__).with_name("erp.wsdl")
"""The ERP's service contract, shipped with the connector: no network to start up."""


class ErpSettings(ConnectorSettings):
    """Where the ERP's SOAP endpoint is and how to authenticate (HTTP basic, optional)."""

    model_config = SettingsConfigDict(env_prefix="HUB_ERP_", extra="ignore", frozen=True)

    url: str = "http://127.0.0.1:8090/"
    wsdl: str = str(SHIPPED_WSDL)
    username: str | None = None
    password: SecretStr | None = None
    max_response_bytes: int = 1_000_000
