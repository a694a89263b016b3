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
    "KafkaSettings",
    "RetentionSettings",
    "RetrySettings",
    "Settings",
    "StaffSettings",
    "TracingSettings",
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
    max_record_bytes: int = Field(
        default=1_000_000, ge=10_000, le=2_000_000,
        description="Largest record the relay sends inline (key, value and headers): "
        "larger ones are stored by reference (hub/claimcheck.py). Keep it below the "
        "brokers' message.max.bytes (Kafka's default 1,048,588).")
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


class RetentionSettings(BaseModel):
    """What the hub prunes, and when (hub/retention.py): ``HUB_RETENTION__*``.

    Processed markers (``hub_processed_message``) are kept for the retention of their
    consumer's topics plus ``margin_s`` (a redelivery can come as long as the record is on
    its topic), those of dead letters for the dead-letter topics' retention plus the margin
    (a replay can come as long as the dead letter exists); markers of scheduled retries are
    never pruned. The other tables keep rows for the time given here.
    """

    enabled: bool = True
    interval_s: float = Field(default=600.0, gt=0, le=86_400,
                              description="How often the pruning job runs.")
    batch_rows: int = Field(default=5_000, ge=1, le=100_000,
                            description="Rows deleted per statement (one short transaction).")
    margin_s: float = Field(default=86_400.0, ge=0,
                            description="Kept beyond the topics' retention.")
    claim_check_s: float = Field(
        default=8 * 86_400.0, gt=0,
        description="Values stored by reference for records of ordinary topics: their "
        "retention (7 days) plus a day.")
    dead_letter_s: float = Field(
        default=31 * 86_400.0, gt=0,
        description="Values stored by reference for dead letters (.dlq topics, 30 days) "
        "plus a day: `hub dlq show` and replays read them.")
    challenge_s: float = Field(default=3_600.0, ge=0,
                               description="Gateway login challenges, after they expired.")
    session_s: float = Field(default=86_400.0, ge=0,
                             description="Gateway card sessions, after they expired.")


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


class TracingSettings(BaseModel):
    """OpenTelemetry tracing (``HUB_TRACING__*``): off unless ``enabled``."""

    enabled: bool = False
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318", pattern=r"^https?://",
        description="OTLP/HTTP receiver (a collector, Jaeger, Tempo); /v1/traces is added.")
    service_name: str = Field(default="procurement-hub", min_length=1, max_length=100)
    sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of new traces kept; a trace that arrives with a record or a "
        "request keeps its sampling decision.")
    export_timeout_s: float = Field(default=10.0, gt=0, le=120)


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
    outbox_poll_interval_s: float = 0.1
    outbox_orphan_age_s: float = Field(
        default=0.5, ge=0,
        description="The polling relay takes rows older than this; younger ones are being "
        "sent by the process that wrote them.")
    outbox_batch: int = 2000
    outbox_send_timeout_s: float = Field(
        default=30.0, gt=0, le=600,
        description="How long the relay waits for the brokers to acknowledge a send before "
        "it is tried again (later, with backoff; the records stay in the outbox meanwhile).")
    retention: RetentionSettings = RetentionSettings()
    tracing: TracingSettings = TracingSettings()
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
