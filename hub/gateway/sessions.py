"""Card sessions: login with a card proof, and the bearer-token check of every call.

Only a registered, active, unexpired card logs in (REG-1, RNW-7); its session is bound
to that card and its user ID, and is re-checked on every call, so a card renewed away
loses its open sessions too. Tokens are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session

from hub.gateway.api import CardProofIn, SessionOut
from hub.gateway.cardauth import VerifiedCard, verify_card_proof
from hub.gateway.config import GatewayConfig
from hub.gateway.errors import refusal
from hub.gateway.models import SessionRow
from pipelines.registration.queries import ActiveCard, find_active_card
from pipelines.registration.store import aware

__all__ = ["CardSession", "authenticate", "check_token", "login", "require_active"]


@dataclass(frozen=True)
class CardSession:
    """Who is calling: a user ID through one registered card (PIN-2)."""

    network: str
    user_id: str
    company_id: str
    issuer: str
    serial: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(cfg: GatewayConfig, session: Session, proof: CardProofIn) -> VerifiedCard:
    """Check a card proof (challenge, chain, validity, signature); no registration check."""
    return asyncio.run(verify_card_proof(
        session, cfg.card_roots, challenge_id=proof.challenge_id,
        certificate=proof.certificate, chain=proof.chain, signature=proof.signature,
        now=cfg.now(),
    ))


def require_active(cfg: GatewayConfig, session: Session, issuer: str, serial: str) -> ActiveCard:
    """The card must be registered and active now (REG-1, RNW-7)."""
    card = find_active_card(session, issuer, serial, cfg.now())
    if card is None:
        raise refusal(403, "REG-1",
                      ("このICカードは登録されていないか、更新により使用できなくなっています。",
                       "This IC card is not registered, or was replaced by a renewal."),
                      ("利用者登録を行うか、登録済みの新しいICカードを使用してください(RNW-7)。",
                       "Register the card, or use your registered new card (RNW-7)."))
    return card


def login(cfg: GatewayConfig, proof: CardProofIn) -> SessionOut:
    # The challenge is consumed in its own transaction: a refused login still burns it.
    with cfg.transaction() as session:
        verified = authenticate(cfg, session, proof)
    with cfg.transaction() as session:
        card = require_active(cfg, session, verified.facts.issuer, verified.facts.serial)
        token = secrets.token_urlsafe(32)
        now = cfg.now()
        row = SessionRow(token_hash=_hash(token), network=card.network, user_id=card.user_id,
                         company_id=card.company_id, issuer=card.issuer, serial=card.serial,
                         created_at=now, expires_at=now + cfg.session_ttl)
        session.add(row)
    return SessionOut(token=token, expires_at=row.expires_at, network=card.network,
                      user_id=card.user_id, company_id=card.company_id)


def check_token(cfg: GatewayConfig, authorization: str | None) -> CardSession:
    """The caller's session from ``Authorization: Bearer <token>``, or 401/403."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise refusal(401, "PIN-2", ("ログインが必要です。", "Login required."),
                      ("ICカードでログインしてください。", "Log in with your IC card."))
    with cfg.transaction() as session:
        row = session.get(SessionRow, _hash(token.strip()))
        now = cfg.now()
        if row is None or aware(row.expires_at) <= now:
            raise refusal(401, "PIN-2", ("セッションが無効か期限切れです。",
                                         "The session is invalid or has expired."),
                          ("ICカードでもう一度ログインしてください。",
                           "Log in again with your IC card."))
        require_active(cfg, session, row.issuer, row.serial)
        return CardSession(network=row.network, user_id=row.user_id,
                           company_id=row.company_id, issuer=row.issuer, serial=row.serial)
