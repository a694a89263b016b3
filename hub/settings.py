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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connectors._shared.settings import run_dir
from schemas.mail import MailAddress
from schemas.topics import ALL_TOPICS

__all__ = [
    "ContractSettings",
    "EntitySettings",
    "HttpSettings",
    "KafkaSettings",
    "OidcSettings",
    "RetentionSettings",
    "RetrySettings",
    "Settings",
    "StaffSettings",
    "StaffTokenSettings",
    "TopicSettings",
    "TracingSettings",
    "load_settings",
]

RUN_DIR = run_dir()


class TopicSettings(BaseModel):
    """One declared topic's size and retention where they differ from schemas/topics.py
    (``hub topics apply``): ``HUB_KAFKA__TOPICS='{"proc.mail.requests": {"partitions": 12}}'``,
    or for every topic ``HUB_KAFKA__TOPIC_DEFAULTS__RETENTION_MS``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: int | None = Field(
        default=None, ge=1, le=10_000,
        description="Partitions of the topic and of its dead-letter twin (only ever grown: "
        "Kafka cannot remove partitions, and more partitions move keys to other ones).")
    retention_ms: int | None = Field(default=None, ge=60_000)
    dlq_retention_ms: int | None = Field(default=None, ge=60_000)


class KafkaSettings(BaseModel):
    """Where the Kafka cluster is and how to authenticate to it.

    ``ssl_cafile`` names the CA certificates (PEM) that the brokers' certificates are
    checked against (hostname included), for ``SSL`` and ``SASL_SSL``; without it, the
    system's. Producer, consumers and admin client all use :meth:`ssl_context`.
    """

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
    # How long one poll of an idle consumer waits; records end the wait at once (the poll
    # does not sleep after an empty one: hub/broker.py), so a long wait costs no latency
    # and keeps an idle process's wake-ups few.
    batch_timeout_ms: int = Field(default=500, ge=1, le=5_000)
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
    unready_after_s: float = Field(
        default=10.0, gt=0, le=600,
        description="/readyz says the outbox relay is not ready while records have waited "
        "longer than this for the brokers' acknowledgement (too few in-sync replicas, "
        "brokers down).")
    replication_factor: int | None = Field(
        default=None, ge=1, le=10,
        description="Replicas of each new topic; default three, or all brokers if fewer.")
    min_insync_replicas: int = Field(
        default=2, ge=1, le=10,
        description="Replicas that must have a record before it is acknowledged (acks=all), "
        "at most the topic's replicas less one, so that one broker may be down.")
    topic_defaults: TopicSettings = TopicSettings()
    topics: dict[str, TopicSettings] = Field(
        default_factory=dict,
        description="Per declared topic (by name): partitions and retention (TopicSettings).")

    @field_validator("topics")
    @classmethod
    def _declared_topics(cls, value: dict[str, TopicSettings]) -> dict[str, TopicSettings]:
        declared = {spec.name for spec in ALL_TOPICS}
        unknown = sorted(set(value) - declared)
        if unknown:
            raise ValueError(f"no topic named {', '.join(unknown)} is declared in "
                             "schemas/topics.py (a dead-letter twin follows its topic)")
        return value

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
    effect_claim_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="How long a connector's claim on a message lasts while it calls the "
        "outside system; a claim older than this (its process died mid-call) is taken "
        "over. Longer than any one call with its own retries.")


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
    client_id: str = Field(default="hub-staff", min_length=1, max_length=200,
                           description="The provider's public client (authorization code "
                           "with PKCE) the staff console logs people in with.")


class EntityErpSettings(BaseModel):
    """One procuring entity's ERP (SOAP) endpoint and credentials."""

    url: str = Field(pattern=r"^https?://", max_length=300)
    username: str | None = None
    password: SecretStr | None = None


class EntityMailSettings(BaseModel):
    """One procuring entity's mail sender: its SMTP relay, From and Reply-To (the rest of
    ``HUB_MAIL_*``, such as the documents' directory, stays the installation's)."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = Field(max_length=254)
    from_name: str = Field(max_length=60)
    reply_to: MailAddress | None = Field(
        default=None, description="The Reply-To of the entity's mails (where answers go).")


class EntitySignerSettings(BaseModel):
    """One procuring entity's city signer (CON-2): its PKCS#11 token and key, and the
    certificates that go with its signature (as ``HUB_CITYSIGNER_*`` for one city)."""

    module: str = Field(default="/usr/lib/softhsm/libsofthsm2.so", max_length=300,
                        description="PKCS#11 module of the entity's signing token.")
    token_label: str = Field(min_length=1, max_length=32)
    key_label: str = Field(min_length=1, max_length=64)
    pin: SecretStr = Field(description="The token's user PIN.")
    chain: tuple[Path, ...] = Field(default=(), description="Intermediate CA certificates.")
    trust_roots: tuple[Path, ...] = Field(default=(), description="Roots for B-LT data.")
    reason: str = Field(default="契約締結（発注者）", max_length=100)


class EntityCloudSignSettings(BaseModel):
    """One procuring entity's CloudSign team: its API and client id (the webhook, the
    document directory and the limits stay the installation's ``HUB_CLOUDSIGN_*``)."""

    base_url: str = Field(pattern=r"^https?://", max_length=300)
    client_id: SecretStr


class EntityDSureSettings(BaseModel):
    """One procuring entity's D・Sure access: the service and the entity's own token."""

    base_url: str = Field(pattern=r"^https?://", max_length=300)
    api_token: SecretStr


class EntitySettings(BaseModel):
    """One procuring entity's own connectors (``[entities.<code>.erp]``, ``.mail``,
    ``.signer``, ``.cloudsign``, ``.dsure`` in the settings file): never shared with another
    entity, never a default (docs/identity.md)."""

    erp: EntityErpSettings | None = None
    mail: EntityMailSettings | None = None
    signer: EntitySignerSettings | None = None
    cloudsign: EntityCloudSignSettings | None = None
    dsure: EntityDSureSettings | None = None


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


Profile = Literal["production", "demo", "test"]
"""``HUB_PROFILE``: ``production`` unless set. ``hub run`` in production refuses to start
while any check of hub/production.py fails; ``demo`` (``hub demo``) and ``test`` (the test
suite, the benchmarks) run on the embedded defaults and say loudly what is for testing."""


class HttpSettings(BaseModel):
    """The hub's own HTTP server (gateway, staff API, webhooks, review pages):
    ``HUB_HTTP__TLS_CERT_FILE`` and ``HUB_HTTP__TLS_KEY_FILE`` (PEM; the certificate file
    may hold its chain) serve it over TLS, HTTP/1.1 (docs/security.md); the limits of
    hub/http_edge.py; the purge of expired challenges, sessions and review links."""

    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    forwarded_allow_ips: str | None = Field(
        default=None, max_length=500,
        description="Proxies (comma-separated addresses) whose X-Forwarded-For names the "
        "client; none by default, so rate limits and the review audit see the peer.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_document_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_webhook_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_per_minute: float = Field(
        default=120, gt=0, description="Requests per minute per client address on the "
        "unauthenticated routes (challenges, review links, webhooks), per hub process.")
    rate_burst: int = Field(default=30, ge=1)
    purge_interval_s: float = Field(default=300, gt=0, le=86_400)
    keep_expired_links_days: float = Field(
        default=30, ge=0, le=3650, description="How long an expired review link still "
        "offers a re-send (410) before it is deleted and opens nothing (404).")

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class TracingSettings(BaseModel):
    """OpenTelemetry tracing (``HUB_TRACING__*``): off unless ``enabled``."""

    enabled: bool = False
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318", pattern=r"^https?://",
        description="OTLP/HTTP receiver (a collector, Jaeger, Tempo); /v1/traces is added.")
    service_name: str = Field(default="procurement-hub", min_length=1, max_length=100)
    sample_ratio: float = Field(
        default=0.1, ge=0.0, le=1.0,
        description="Share of new traces kept (parent-based: a trace that arrives with a "
        "record or a request keeps its sampling decision). 1.0 to follow every case, at "
        "a cost under sustained load (docs/performance.md).")
    export_timeout_s: float = Field(default=10.0, gt=0, le=120)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    profile: Profile = "production"
    insecure_plain_http_peers: tuple[str, ...] = Field(
        default=(),
        description="Peers the operator accepts to reach without TLS in production, by name "
        "(application, dsure, cloudsign, erp, tsa, mail-links, review-links, smtp): a "
        "risk taken knowingly, one peer at a time (docs/security.md).")
    field_keys: SecretStr | None = Field(
        default=None,
        description="Keys of the fields sealed on Kafka (認証キー): 'kid=base64url(32 bytes)', "
        "several separated by spaces, the first seals, all open (rotation). Unset: the "
        "embedded demo key (refused in production).")
    id_key: SecretStr | None = Field(
        default=None,
        description="Key of the message ids derived from outside events (HMAC-SHA256; the "
        "same in every hub process of a deployment, at least 32 characters). Unset: the "
        "embedded demo key (refused in production).")
    kafka: KafkaSettings = KafkaSettings()
    database_url: SecretStr = SecretStr(f"sqlite:///{RUN_DIR / 'hub.db'}")
    producer_name: str = "procurement-hub"
    http_host: str = "127.0.0.1"
    http_port: int = 8480
    http: HttpSettings = HttpSettings()
    public_base_url: str | None = Field(
        default=None, max_length=300, pattern=r"^https?://",
        description="Where people reach this hub (review links, CON-4 download links in "
        "mails); default the hub's own HTTP host and port. Set it where the hub is behind "
        "a proxy or a load balancer: every process then links to the same place.")
    retry: RetrySettings = RetrySettings()
    registration_policy: Path | None = Field(
        default=None,
        description="The registration policy TOML file (REG, CHG, RNW, WIN-1, WIN-2; "
        "docs/rules.md); default the packaged pipelines/registration/default_policy.toml.")
    propagation_interval_s: float = Field(
        default=300.0, ge=0,
        description="How often the job applying due propagations to the other entities "
        "runs (REG-9, CHG-3, RNW-8).")
    staff_token: SecretStr | None = Field(
        default=None,
        description="The staff API token `hub connectors` sends (default the local "
        "RUN_DIR/staff-token).")
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
    outbox_send_timeout_s: float = Field(
        default=30.0, gt=0, le=600,
        description="How long the relay waits for the brokers to acknowledge a send before "
        "it is tried again (later, with backoff; the records stay in the outbox meanwhile).")
    retention: RetentionSettings = RetentionSettings()
    tracing: TracingSettings = TracingSettings()
    migrate_on_start: bool = True
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    def public_base(self) -> str:
        """:attr:`public_base_url`, else the hub's own HTTP host (loopback when it listens
        everywhere) and port, ``https`` when it serves TLS; without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = self.http_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 -- listening everywhere: use loopback
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"  # an IPv6 literal in a URL
        scheme = "https" if self.http.tls else "http"
        return f"{scheme}://{host}:{self.http_port}"

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
