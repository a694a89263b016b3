"""How the hub wires the gateway: settings (``HUB_GATEWAY_*``), the router and the
consumer that records registration outcomes for the agent (REG-10).

    cfg = gateway_config(engine)                       # from HUB_GATEWAY_* settings
    wiring.routers.append(build_router(cfg))           # HTTP: /gateway/...
    wiring.consumers.append(OUTCOME_CONSUMER)          # proc.registration.events
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.consumers import ConsumerSpec
from hub.gateway.config import GatewayConfig
from hub.gateway.outcomes import OUTCOME_TYPES, handle_registration_event
from pipelines.registration.policy import PolicyBook, default_policy_book
from schemas.topics import Topics

__all__ = ["OUTCOME_CONSUMER", "GatewaySettings", "gateway_config"]


class GatewaySettings(BaseSettings):
    """``HUB_GATEWAY_CARD_ROOTS``: PEM files of the card CAs' roots (REG-1);
    ``HUB_GATEWAY_SIGNATURE_ROOTS``: roots for returned signatures and their TSA tokens
    (defaults to the card roots plus ``HUB_TSA_TRUST_ROOTS``); ``HUB_GATEWAY_AGENT_URL``:
    the card agent's local service, called by the contractor's pages."""

    model_config = SettingsConfigDict(env_prefix="HUB_GATEWAY_", extra="ignore", frozen=True)

    card_roots: tuple[Path, ...] = ()
    signature_roots: tuple[Path, ...] = ()
    session_minutes: int = Field(default=15, ge=1, le=24 * 60)
    challenge_seconds: int = Field(default=120, ge=10, le=3600)
    agent_url: str = Field(default="http://127.0.0.1:8489",
                           description="Where the contractor's pages find `card-agent serve`.")


def _load(paths: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    out: list[x509.Certificate] = []
    for path in paths:
        out.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return tuple(out)


def gateway_config(engine: Engine, settings: GatewaySettings | None = None, *,
                   on_signed: Callable[[Session, Any, dt.datetime], Any] | None = None,
                   book: PolicyBook | None = None) -> GatewayConfig:
    from connectors.tsa.settings import TsaSettings

    s = settings or GatewaySettings()
    card_roots = _load(s.card_roots)
    if not card_roots:
        raise ValueError("the gateway needs HUB_GATEWAY_CARD_ROOTS (PEM files of card CA roots)")
    signature_roots = _load(s.signature_roots) or card_roots + TsaSettings().load_trust_roots()
    return GatewayConfig(engine=engine, card_roots=card_roots, signature_roots=signature_roots,
                         session_ttl=dt.timedelta(minutes=s.session_minutes),
                         challenge_ttl=dt.timedelta(seconds=s.challenge_seconds),
                         on_signed=on_signed, book=book or default_policy_book())


OUTCOME_CONSUMER = ConsumerSpec(
    name="gateway-outcomes",
    topics=(Topics.REGISTRATION_EVENTS,),
    handlers=dict.fromkeys(OUTCOME_TYPES, handle_registration_event),
    description="Keeps the registration pipeline's answers for card agents (REG-10).",
)
