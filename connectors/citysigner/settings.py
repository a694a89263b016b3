"""Settings of the city's own signer: environment prefix ``HUB_CITYSIGNER_``.

``module`` is the PKCS#11 library of the city's HSM or signing card (SoftHSM2 in tests),
``token_label`` its token, ``key_label`` the key and certificate objects' label. The
user PIN is a secret: never in a repr or a log line. ``chain`` and ``trust_roots`` are
PEM files: the certificates embedded with the signature and the roots its long-term
validation data is built against (PAdES B-LT).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CitySignerSettings"]


class CitySignerSettings(BaseSettings):
    """``HUB_CITYSIGNER_MODULE``, ``_TOKEN_LABEL``, ``_KEY_LABEL``, ``_PIN``, ``_CHAIN``,
    ``_TRUST_ROOTS``."""

    model_config = SettingsConfigDict(env_prefix="HUB_CITYSIGNER_", extra="ignore", frozen=True)

    module: str = Field(default="/usr/lib/softhsm/libsofthsm2.so",
                        description="PKCS#11 module of the city's signing token.")
    token_label: str = Field(default="city-signer", min_length=1, max_length=32)
    key_label: str = Field(default="city", min_length=1, max_length=64)
    pin: SecretStr = Field(default=SecretStr(""), description="The token's user PIN.")
    chain: tuple[Path, ...] = Field(default=(), description="Intermediate CA certificates.")
    trust_roots: tuple[Path, ...] = Field(default=(), description="Roots for B-LT data.")
    reason: str = Field(default="契約締結（発注者）", max_length=100)
