"""Card sessions: login with a card proof for one entity, system and domain, and the
bearer-token check of every call.

A session is opened for the procuring entity, system and domain the agent names, and
only when the card is registered and active there (``login.decide_login``, the same
decision ``hub rules evaluate`` answers for a ``registration.login``): an unknown card
is refused REG-1, a card replaced by renewal RNW-7, a domain the card is not registered
in CHG-2, an entity where it is not registered REG-1, an expired card REG-6, and an
announced maintenance window of the whole system WIN-2. The session keeps the entity,
system and domain, and every call decides again, so a card renewed away loses its
open sessions too. Tokens are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session

from hub.gateway.api import CardProofIn, LoginIn, SessionOut
from hub.gateway.cardauth import VerifiedCard, verify_card_proof
from hub.gateway.config import GatewayConfig
from hub.gateway.errors import GatewayRefusalError, refusal
from hub.gateway.models import SessionRow
from pipelines.registration.login import LoginAttempt, decide_login
from pipelines.registration.queries import ActiveCard, find_active_card, login_card_of
from pipelines.registration.store import aware
from schemas.registration import CardRef, Domain, SystemKind

__all__ = ["CardSession", "authenticate", "check_token", "login", "require_active",
           "require_login"]


@dataclass(frozen=True)
class CardSession:
    """Who is calling: a user ID through one registered card (PIN-2), for one entity,
    system and domain."""

    network: str
    user_id: str
    company_id: str
    issuer: str
    serial: str
    procuring_entity: str
    system: SystemKind
    domain: Domain


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
    """The card must be registered and active now somewhere (REG-1, RNW-7): a change or a
    renewal names its entity and domain itself, and the pipeline decides there."""
    card = find_active_card(session, issuer, serial, cfg.now())
    if card is None:
        raise refusal(403, "REG-1",
                      ("このICカードは登録されていないか、更新により使用できなくなっています。",
                       "This IC card is not registered, or was replaced by a renewal."),
                      ("利用者登録を行うか、登録済みの新しいICカードを使用してください(RNW-7)。",
                       "Register the card, or use your registered new card (RNW-7)."))
    return card


def require_login(cfg: GatewayConfig, session: Session, attempt: LoginAttempt) -> ActiveCard:
    """The card may act at the attempt's entity, system and domain now, or the refusal
    with the rule that says why (403; 503 inside a maintenance window, WIN-2)."""
    now = cfg.now()
    card = login_card_of(session, attempt.card.issuer, attempt.card.serial)
    violations = decide_login(cfg.book, card, attempt, now)
    if not violations:
        found = find_active_card(session, attempt.card.issuer, attempt.card.serial, now,
                                 entity=attempt.procuring_entity, domain=attempt.domain)
        if found is not None:
            return found
        return require_active(cfg, session, attempt.card.issuer, attempt.card.serial)
    status = 503 if violations[0].rule_id == "WIN-2" else 403
    raise GatewayRefusalError(status, violations)


def login(cfg: GatewayConfig, body: LoginIn) -> SessionOut:
    # The challenge is consumed in its own transaction: a refused login still burns it.
    with cfg.transaction() as session:
        verified = authenticate(cfg, session, body)
    attempt = LoginAttempt(procuring_entity=body.procuring_entity, system=body.system,
                           domain=body.domain, card=CardRef(issuer=verified.facts.issuer,
                                                            serial=verified.facts.serial))
    with cfg.transaction() as session:
        card = require_login(cfg, session, attempt)
        token = secrets.token_urlsafe(32)
        now = cfg.now()
        row = SessionRow(token_hash=_hash(token), network=card.network, user_id=card.user_id,
                         company_id=card.company_id, issuer=card.issuer, serial=card.serial,
                         procuring_entity=body.procuring_entity, system=body.system.value,
                         domain=body.domain.value, created_at=now,
                         expires_at=now + cfg.session_ttl)
        session.add(row)
    return SessionOut(token=token, expires_at=row.expires_at, network=card.network,
                      user_id=card.user_id, company_id=card.company_id,
                      procuring_entity=body.procuring_entity, system=body.system,
                      domain=body.domain)


def _invalid() -> GatewayRefusalError:
    return refusal(401, "PIN-2", ("セッションが無効か期限切れです。",
                                  "The session is invalid or has expired."),
                   ("ICカードでもう一度ログインしてください。", "Log in again with your IC card."))


def check_token(cfg: GatewayConfig, authorization: str | None) -> CardSession:
    """The caller's session from ``Authorization: Bearer <token>``, or 401/403/503.

    The login decision is taken again for the session's card, entity, system and domain.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise refusal(401, "PIN-2", ("ログインが必要です。", "Login required."),
                      ("ICカードでログインしてください。", "Log in with your IC card."))
    with cfg.transaction() as session:
        row = session.get(SessionRow, _hash(token.strip()))
        now = cfg.now()
        if row is None or aware(row.expires_at) <= now:
            raise _invalid()
        try:
            attempt = LoginAttempt(procuring_entity=row.procuring_entity,
                                   system=SystemKind(row.system), domain=Domain(row.domain),
                                   card=CardRef(issuer=row.issuer, serial=row.serial))
        except ValueError:  # a session opened before sessions named their entity
            raise _invalid() from None
        require_login(cfg, session, attempt)
        return CardSession(network=row.network, user_id=row.user_id,
                           company_id=row.company_id, issuer=row.issuer, serial=row.serial,
                           procuring_entity=attempt.procuring_entity, system=attempt.system,
                           domain=attempt.domain)
