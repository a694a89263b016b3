"""Review links and their one-time codes (CON-3): what makes them unguessable.

A review link is a capability: whoever holds its URL can read the contract set. So:

- its token is 256 random bits (:func:`secrets.token_urlsafe`), drawn when the link is
  made and never derived from the case (case numbers are public with the bid results);
- only the token's SHA-256 is stored (``con_review_link``); the token itself exists only
  in the review mail, so a copy of the database opens no link;
- the link's ``link_id`` (a random UUID, named in events and commands) identifies the link
  and opens nothing;
- agreeing or rejecting needs a second factor: a one-time code mailed to the declared
  address that asks for it (:func:`issue_code`), valid :data:`CODE_TTL`, at most
  :data:`CODE_ATTEMPTS` tries and :data:`CODES_PER_LINK` codes per link, stored as an
  HMAC keyed with the link's token (a copy of the database cannot test codes offline);
- every view and action through a link, refused ones included, is written to the
  hash-chained audit trail ``hub_audit`` (:func:`audit`, pipelines/audit.py): who, when,
  which link, from which client address, with what outcome.

Expired links are deleted some time after their expiry (:func:`purge_links`); until then
an expired link still offers a re-send (410 instead of 404).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session

from pipelines.audit import record
from pipelines.contract.models import ReviewLinkRow

__all__ = [
    "CODES_PER_LINK",
    "CODE_ATTEMPTS",
    "CODE_TTL",
    "CodeCheck",
    "FreshLink",
    "audit",
    "check_code",
    "find_link",
    "issue_code",
    "purge_links",
    "record_link",
    "spend_link",
    "token_sha256",
]

CODE_TTL = timedelta(minutes=10)
CODE_ATTEMPTS = 5
"""Wrong codes before a code stops working (a new one can be asked for)."""
CODES_PER_LINK = 5
"""Codes one link may ask for: with 6 digits, a guesser's odds stay below 1 in 40,000."""
CODE_DIGITS = 6


@dataclass(frozen=True)
class FreshLink:
    """A new link's id and token, drawn at random (:meth:`draw`); the rules take one so
    that their decision stays a function of its inputs."""

    link_id: uuid.UUID
    token: str = field(repr=False)

    @classmethod
    def draw(cls) -> FreshLink:
        return cls(uuid.uuid4(), secrets.token_urlsafe(32))


def token_sha256(token: str) -> str:
    """What ``con_review_link`` keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _code_mac(token: str, code: str) -> str:
    return hmac.new(token.encode("utf-8", "surrogatepass"), code.encode("ascii"),
                    hashlib.sha256).hexdigest()


def _aware(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; the hub stores UTC.
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


def record_link(session: Session, case_id: str, fresh: FreshLink, *, number: int,
                created_at: datetime, expires_at: datetime) -> None:
    """Keep the hash of a link the process just made (same transaction as the case)."""
    session.add(ReviewLinkRow(token_sha256=token_sha256(fresh.token), case_id=case_id,
                              link_id=str(fresh.link_id), number=number,
                              created_at=created_at, expires_at=expires_at))


def find_link(session: Session, token: str, *, for_update: bool = False
              ) -> ReviewLinkRow | None:
    """The link a token opens, or ``None`` (forged, guessed, or purged). ``for_update``
    locks its row (PostgreSQL) for a code's check or issue: two tries never both pass."""
    if not token or len(token) > 200:
        return None
    row = session.get(ReviewLinkRow, token_sha256(token), with_for_update=for_update)
    if row is not None:
        row.expires_at = _aware(row.expires_at)  # type: ignore[assignment]
        row.spent_at = _aware(row.spent_at)
        row.code_expires_at = _aware(row.code_expires_at)
    return row


def spend_link(session: Session, row: ReviewLinkRow, now: datetime) -> None:
    """The link has served its agreement or rejection: it opens nothing more."""
    row.spent_at = now
    row.code_sha256 = None
    session.add(row)


def issue_code(session: Session, row: ReviewLinkRow, token: str, to: str,
               now: datetime) -> str | None:
    """A fresh code for ``to`` (replacing any earlier one), or ``None`` when the link has
    used up its codes. The caller mails it; only its MAC is kept."""
    if row.codes_sent >= CODES_PER_LINK:
        return None
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    row.code_sha256 = _code_mac(token, code)
    row.code_for = to
    row.code_expires_at = now + CODE_TTL
    row.code_attempts = 0
    row.codes_sent += 1
    session.add(row)
    return code


class CodeCheck(StrEnum):
    OK = "ok"
    NONE = "none"
    """No code was asked for (or the last one was used up)."""
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    """Too many wrong tries: a new code must be asked for."""


def check_code(session: Session, row: ReviewLinkRow, token: str, *, by: str, code: str,
               now: datetime) -> CodeCheck:
    """Whether ``code`` is the live code mailed to ``by``; every wrong try counts (also
    one for another address), and a right one is used up."""
    if row.code_sha256 is None or row.code_expires_at is None:
        return CodeCheck.NONE
    if row.code_attempts >= CODE_ATTEMPTS:
        return CodeCheck.EXHAUSTED
    if now >= row.code_expires_at:
        return CodeCheck.EXPIRED
    row.code_attempts += 1
    right = hmac.compare_digest(row.code_sha256, _code_mac(token, code.strip()[:16]))
    if right and (row.code_for or "") == by.lower():
        row.code_sha256 = None
        session.add(row)
        return CodeCheck.OK
    session.add(row)
    return CodeCheck.EXHAUSTED if row.code_attempts >= CODE_ATTEMPTS else CodeCheck.WRONG


REFUSED = {403: "denied", 404: "refused", 410: "refused", 422: "refused"}


def audit(session: Session, *, action: str, status: int, client: str | None, at: datetime,
          case_id: str | None = None, link_id: str | None = None, actor: str | None = None,
          detail: str | None = None, entity: str | None = None, durable: bool = True) -> None:
    """One row of the hash-chained audit trail (``hub_audit``, pipelines/audit.py) in
    ``session``'s transaction, never with the token or the code: actor the address given
    (``anonymous`` when none), kind ``contractor``, the case's entity, action
    ``review.<action>``, target the case, outcome from the HTTP status; the status, the
    link's id and the refusal in its detail (JSON). ``durable=False`` for a row with no
    effect of its own (a view, a refusal), as for the staff's reads."""
    outcome = "ok" if status < 400 else REFUSED.get(status, "failed")
    record(session, actor=actor or "anonymous", actor_kind="contractor",
           action=f"review.{action[:16]}", target=case_id or "-", at=at,
           entity=entity or "", client=(client or "?")[:64], outcome=outcome,
           detail=json.dumps({"status": status, "link_id": link_id,
                              "detail": detail[:200] if detail else None},
                             ensure_ascii=False), durable=durable)


def purge_links(session: Session, now: datetime, keep_expired: timedelta) -> int:
    """Delete links expired more than ``keep_expired`` ago; the number deleted."""
    table = ReviewLinkRow.__table__  # type: ignore[attr-defined]
    result = session.execute(sa.delete(table).where(table.c.expires_at < now - keep_expired))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
