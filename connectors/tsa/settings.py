"""Settings of the TSA connector (environment prefix ``HUB_TSA_``).

``HUB_TSA_URL`` is the RFC 3161 endpoint; ``HUB_TSA_TRUST_ROOTS`` the PEM files of the
roots the TSA certificate must chain to; ``HUB_TSA_MAINTENANCE`` the TSA's announced
windows (WIN-3), e.g. ``'["monthly 3 wed 18:30-23:00"]'``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from connectors._shared.settings import ConnectorSettings

__all__ = ["TsaSettings"]


class TsaSettings(ConnectorSettings):
    """Where the TSA is and what its tokens must chain to."""

    model_config = SettingsConfigDict(env_prefix="HUB_TSA_", extra="ignore", frozen=True)

    url: str = Field(default="http://127.0.0.1:8318/tsa", description="RFC 3161 over HTTP.")
    trust_roots: tuple[Path, ...] = Field(
        default=(), description="PEM files of the roots the TSA certificate chains to."
    )
    hash_algorithm: str = Field(default="sha256", pattern="^sha(256|384|512)$")

    def load_trust_roots(self) -> tuple[x509.Certificate, ...]:
        """The trust roots, read from their PEM files."""
        roots: list[x509.Certificate] = []
        for path in self.trust_roots:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        return tuple(roots)
