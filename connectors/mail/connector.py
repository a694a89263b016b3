"""The mail connector: MailRequested in, MailSent out (NTF rules, CON-4).

The hub's consumer of ``Topics.MAIL_REQUESTS`` awaits :meth:`MailConnector.send`
and publishes the MailSent it returns to ``Topics.MAIL_EVENTS``. A request that
can never make a safe mail (a missing value, a line break in a name, a document
that does not exist) is refused with :class:`PermanentPeerError` naming the rule;
an SMTP outage raises :class:`TransientPeerError` after the connector's retries,
so the hub retries later and nothing is lost; inside a maintenance window of
the relay, :class:`PeerInMaintenance` holds the mail.

Repeats: the hub deduplicates on the envelope, and the Message-ID is derived
from ``mail_id``, so a mail re-sent after a crash is recognisable as the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from connectors._shared.base import Guard
from connectors._shared.errors import PermanentPeerError
from connectors._shared.health import Health
from connectors.mail.adapter import NAME, SmtpAdapter
from connectors.mail.documents import DirectoryDocumentStore, DocumentNotFoundError, DocumentStore
from connectors.mail.mapping import Attachment, DownloadLink, Sender, build_message, violation_for
from connectors.mail.settings import MailSettings
from connectors.mail.templates import MailValueError
from schemas.mail import MailRequested, MailSent, attachable
from schemas.rejection import RuleViolation

__all__ = ["MailConnector"]


def _missing_document(ref: str) -> PermanentPeerError:
    return PermanentPeerError(NAME, f"no document {ref!r} to attach or link", (RuleViolation(
        rule_id="CON-4",
        message_ja="添付またはリンクする文書が見つかりません。",
        message_en="The document to attach or link was not found.",
        next_step_ja="文書の保存先（attachment_ref）を確認し、送信を依頼し直してください。",
        next_step_en="Check the document reference (attachment_ref) and request the mail again.",
        field="attachment_ref",
    ),))


class MailConnector:
    """Renders and sends notices through the SMTP relay, guarded by retry, breaker, windows."""

    name = NAME

    def __init__(self, settings: MailSettings | None = None, *,
                 documents: DocumentStore | None = None, guard: Guard | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings or MailSettings()
        s = self.settings
        self.documents: DocumentStore = documents or DirectoryDocumentStore(
            s.documents_dir, s.documents_base_url, s.link_key.get_secret_value().encode())
        self.adapter = SmtpAdapter(s)
        self.guard = guard or Guard.from_settings(NAME, s)
        self.sender = Sender(s.from_address, s.from_name, s.system_name, s.reply_to)
        self._now = now

    async def _document(self, ref: str, now: datetime
                        ) -> tuple[Attachment | None, DownloadLink | None]:
        try:
            doc = await self.documents.describe(ref)
            if attachable(doc.size):
                return Attachment(doc.filename, doc.content_type,
                                  await self.documents.read(ref)), None
            expires = now + timedelta(days=self.settings.link_valid_days)
            url = await self.documents.download_link(ref, expires)
        except DocumentNotFoundError:
            raise _missing_document(ref) from None
        return None, DownloadLink(doc.filename, url, expires)

    async def send(self, request: MailRequested) -> MailSent:
        """Send one notice. Raises only classified connector errors."""
        now = self._now()
        attachment, link = (None, None)
        if request.attachment_ref:
            attachment, link = await self._document(request.attachment_ref, now)
        try:
            message = build_message(request, self.sender, date=now, attachment=attachment,
                                    link=link)
        except MailValueError as exc:
            raise PermanentPeerError(NAME, str(exc), (violation_for(exc),)) from None
        await self.guard.call(lambda: self.adapter.send(message, request.to), what="send")
        return MailSent(mail_id=request.mail_id, smtp_message_id=str(message["Message-ID"]))

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        """Nothing to release: one SMTP connection per mail, closed after it."""
