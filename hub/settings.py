"""The hub's settings, read with pydantic-settings.

Sources, strongest first: keyword arguments, environment variables ``HUB_*``
(nested with ``__``, e.g. ``HUB_KAFKA__BOOTSTRAP_SERVERS``), a TOML file named by
``HUB_SETTINGS_FILE``, then the embedded defaults: a broker on 127.0.0.1:9092 and a
SQLite file in ``.run/``. Secrets are ``SecretStr``: they never print.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connectors._shared.settings import run_dir

__all__ = [
    "ContractSettings",
    "EntitySettings",
    "KafkaSettings",
    "OidcSettings",
    "RetrySettings",
    "Settings",
    "StaffSettings",
    "StaffTokenSettings",
    "load_settings",
]

RUN_DIR = run_dir()


class KafkaSettings(BaseModel):
    """Where the Kafka cluster is and how to authenticate to it."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    client_id: str = "procurement-hub"
    group_prefix: str = Field(
        default="hub", description="Consumer groups are named <group_prefix>.<consumer name>."
    )
    batch_max_records: int = Field(default=500, ge=1, le=10_000)
    # Both only bound how long an idle consumer waits: records end the wait at once. Every
    # consumer group of the process polls this often when idle (FastStream's batch loop
    # waits batch_timeout_ms, then sleeps as long; each fetch the broker holds up to
    # fetch_max_wait_ms): at 5 / 10 ms an idle hub took 0.28 of a core and Kafka 0.39.
    batch_timeout_ms: int = Field(default=20, ge=1, le=5_000)
    fetch_max_wait_ms: int = Field(
        default=100, ge=0, le=5_000,
        description="How long the broker may hold a fetch for more data: latency vs requests.")
    stop_commit_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="How long stopping waits for the last offset commit. Given up after "
        "that, its records are read again by the next owner and deduplicated.")

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            ctx.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile or self.ssl_certfile))
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection arguments for aiokafka clients (producer, admin, tools)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if (ctx := self.ssl_context()) is not None:
            kwargs["ssl_context"] = ctx
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kwargs


class RetrySettings(BaseModel):
    """Redelivery of messages whose handler failed transiently (exponential, jittered)."""

    max_attempts: int = Field(default=5, ge=1, le=50)
    base_delay_s: float = Field(default=1.0, gt=0)
    max_delay_s: float = Field(default=300.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    poll_interval_s: float = Field(default=0.5, gt=0)


class ContractSettings(BaseModel):
    """The contract process (CON-2, CON-3): ``HUB_CONTRACT__JOB_INTERVAL_S``,
    ``HUB_CONTRACT__REVIEW_LINK_TTL_HOURS``, ``HUB_CONTRACT__REVIEW_BASE_URL``."""

    job_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="How often the contract jobs run: review-link expiry, collecting the "
        "contractor's signatures, the city's signing (the demo and tests use ~0.5).")
    review_link_ttl_hours: float = Field(
        default=7 * 24, gt=0, le=24 * 90,
        description="How long a review link works (CON-3; CloudSign-like 7 days).")
    review_base_url: str | None = Field(
        default=None, max_length=300, pattern=r"^https?://",
        description="Where review links point; default the hub's own HTTP host and port "
        "+ /contract/review (set it where the hub is reached through a proxy).")


class StaffTokenSettings(BaseModel):
    """One static bearer token mapped to a principal (docs/identity.md): its SHA-256 digest,
    who it stands for, its procuring entities and roles."""

    sha256: str = Field(min_length=64, max_length=64)
    subject: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    kind: Literal["person", "client"] = "client"
    entities: tuple[str, ...] = Field(min_length=1)
    roles: tuple[str, ...] = Field(min_length=1)


class OidcSettings(BaseModel):
    """The staff's OpenID Connect provider (``HUB_STAFF__OIDC__ISSUER``, ...): access tokens
    are verified against its JWKS (signature, issuer, audience, expiry with ``leeway_s``)."""

    issuer: str = Field(pattern=r"^https?://", max_length=300)
    audience: str = Field(default="procurement-hub", min_length=1, max_length=200)
    jwks_url: str | None = Field(default=None, pattern=r"^https?://", max_length=300,
                                 description="Default: the issuer's discovery document's.")
    leeway_s: int = Field(default=30, ge=0, le=300)
    jwks_min_refetch_s: float = Field(
        default=30.0, ge=0, le=3600,
        description="A token with an unknown key id refetches the JWKS at most this often.")
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    entity_group_prefix: str = "/entities/"
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class EntityErpSettings(BaseModel):
    """One procuring entity's ERP (SOAP) endpoint and credentials."""

    url: str = Field(pattern=r"^https?://", max_length=300)
    username: str | None = None
    password: SecretStr | None = None


class EntityMailSettings(BaseModel):
    """One procuring entity's mail sender: its SMTP relay and From (the rest of
    ``HUB_MAIL_*``, such as the documents' directory, stays the installation's)."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = Field(max_length=254)
    from_name: str = Field(max_length=60)


class EntitySettings(BaseModel):
    """One procuring entity's own connectors (``[entities.<code>.erp]``, ``.mail`` in the
    settings file): never shared with another entity, never a default (docs/identity.md).
    The signer, the CloudSign client and the D・Sure trust are still the installation's own
    (one of each)."""

    erp: EntityErpSettings | None = None
    mail: EntityMailSettings | None = None


class StaffSettings(BaseModel):
    """Who may use the city staff's HTTP endpoints (contract archive and steps: CON-6, CON-7).

    Only SHA-256 digests of the staff API tokens are configured (hex, one per token):
    ``HUB_STAFF__TOKEN_SHA256`` (a JSON list) and/or ``HUB_STAFF__TOKEN_FILE`` (one digest
    per line, ``#`` comments). hub/staff.py checks their form without echoing a value (a
    token put there by mistake must not reach a log). With neither, the embedded default
    generates one token into ``RUN_DIR/staff-token`` (hub/staff.py).
    """

    token_sha256: tuple[str, ...] = ()
    token_file: Path | None = None
    token_entities: tuple[str, ...] = Field(
        default=("*",),
        description="The procuring entities the bare digests above act for ('*': every "
        "entity, the single-entity and embedded installation). Map tokens to persons with "
        "``tokens`` instead.")
    tokens: tuple[StaffTokenSettings, ...] = ()
    oidc: OidcSettings | None = None
    users_file: Path | None = Field(
        default=None, description="The built-in local user store (``hub users add``); "
        "default RUN_DIR/staff-users.json when it exists.")
    local_token_ttl_s: int = Field(default=3600, ge=60, le=86_400)
    audit_retention_days: int = Field(
        default=3650, ge=1, le=36_500,
        description="How long audit rows are kept (``hub audit prune``); ten years by "
        "default, as long as the contract records.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    database_url: SecretStr = SecretStr(f"sqlite:///{RUN_DIR / 'hub.db'}")
    producer_name: str = "procurement-hub"
    http_host: str = "127.0.0.1"
    http_port: int = 8480
    retry: RetrySettings = RetrySettings()
    contract: ContractSettings = ContractSettings()
    staff: StaffSettings = StaffSettings()
    entities: dict[str, EntitySettings] = Field(
        default_factory=dict,
        description="Each procuring entity's own connectors; empty: one of each for all.")
    outbox_poll_interval_s: float = 0.1
    outbox_orphan_age_s: float = Field(
        default=0.5, ge=0,
        description="The polling relay takes rows older than this; younger ones are being "
        "sent by the process that wrote them.")
    outbox_batch: int = 2000
    migrate_on_start: bool = True
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path := os.environ.get("HUB_SETTINGS_FILE"):
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
