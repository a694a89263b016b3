"""The mail connector as a hub consumer effect: MAIL_REQUESTS → SMTP → MAIL_EVENTS.

MailRequested → :meth:`MailConnector.send` → MailSent. A request refused for a
rule (a value with a line break, a missing document, a recipient the relay
rejects for good) → MailFailed naming the rule, not an exception. An SMTP
outage is raised as TransientPeerError (the hub retries, then dead-letters;
nothing is lost), a relay maintenance window as PeerInMaintenance (held), a
misconfiguration (no rule) as PermanentPeerError (dead-lettered, replayable).
"""

from __future__ import annotations

from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors._shared.errors import PermanentPeerError
from connectors.mail.connector import MailConnector
from schemas.envelope import Envelope
from schemas.mail import MailFailed, MailRequested
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["effects"]


def effects(connector: MailConnector) -> dict[type[Payload], Effect]:
    async def send(ctx: Emitter, envelope: Envelope[Any]) -> None:
        request: MailRequested = envelope.payload
        try:
            sent = await connector.send(request)
        except PermanentPeerError as exc:
            if not exc.violations:
                raise
            failed = MailFailed(mail_id=request.mail_id, reason=f"{exc.text_ja}\n{exc.text_en}")
            ctx.emit(Topics.MAIL_EVENTS, failed, cause=envelope)
            return
        ctx.emit(Topics.MAIL_EVENTS, sent, cause=envelope)

    return {MailRequested: send}
