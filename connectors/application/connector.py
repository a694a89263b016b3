"""The online application system connector: what the hub calls (CON-1, CON-2, SUR-1).

Entry points:

- ``await connector.receive(application_id)`` → :class:`ApplicationReceived`, for a
  webhook announcement (see ``inbound``); publish to ``Topics.APPLICATION_EVENTS``
  with :meth:`ApplicationConnector.envelope` (one message id per application, so
  webhook and polling never deliver it twice past the idempotent consumer);
- ``await connector.poll(cursor)`` → :class:`PollBatch`, the safety net when a
  webhook was lost; the caller keeps the cursor;
- ``await connector.send_correction(command)`` for ``Topics.APPLICATION_COMMANDS``
  (:class:`CorrectionRequested`) → :class:`CorrectionSent` for APPLICATION_EVENTS.

Key notice PDFs attached to an application are read on receipt (SUR-1), each in a child
process with CPU, memory and time limits: their number and key ride along as
``surety_notices``; an unreadable one (damaged, crafted, over a limit) becomes a SUR-1
``problem`` so the city can ask for a correction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors._shared import Guard, Health, PermanentPeerError
from connectors._shared.httpkit import classify_httpx
from connectors.application.adapter import NAME, ApplicationAdapter
from connectors.application.mapping import (
    PeerFormatError,
    application_from_peer,
    correction_to_peer,
    message_id_for,
)
from connectors.application.settings import ApplicationSettings
from connectors.dsure.keynotice import KeyNoticeUnreadable, read_key_notice_isolated
from schemas.application import (
    ApplicationReceived,
    AttachmentRef,
    CorrectionRequested,
    CorrectionSent,
    FormKind,
    SuretyKeyNotice,
)
from schemas.envelope import Envelope, new_envelope
from schemas.rejection import RuleViolation

__all__ = ["PRODUCER", "ApplicationConnector", "PollBatch"]

PRODUCER = "connector.application"


@dataclass(frozen=True)
class PollBatch:
    """One poll: what was read, what could never be read (id, reason), and the next cursor.

    ``unreadable`` records are dead-lettered by the caller; the cursor moves past
    them so one bad record never blocks the others.
    """

    received: list[ApplicationReceived]
    cursor: str
    unreadable: list[tuple[str, str]] = field(default_factory=list)


class ApplicationConnector:
    name = NAME

    def __init__(self, settings: ApplicationSettings | None = None, *,
                 adapter: ApplicationAdapter | None = None, guard: Guard | None = None) -> None:
        self.settings = settings or ApplicationSettings()
        self.adapter = adapter or ApplicationAdapter(self.settings)
        self.guard = guard or Guard.from_settings(NAME, self.settings, classify=classify_httpx)

    async def receive(self, application_id: str) -> ApplicationReceived:
        """Fetch one application (announced by webhook) as a canonical message."""
        raw = await self.guard.call(lambda: self.adapter.get(application_id), what="get")
        return await self._canonical(raw)

    async def announced_after(self, cursor: str = "0") -> tuple[list[str], str]:
        """Ids of the applications submitted after ``cursor``, and the next cursor: what
        the poller publishes as ``ApplicationSubmitted`` (the effect fetches each)."""
        items, next_cursor = await self.guard.call(
            lambda: self.adapter.list_after(cursor, self.settings.poll_limit), what="poll")
        ids = [str(raw["id"]) for raw in items if isinstance(raw, dict) and raw.get("id")]
        return ids, next_cursor

    async def poll(self, cursor: str = "0") -> PollBatch:
        """Applications submitted after ``cursor`` (at most ``poll_limit``)."""
        items, next_cursor = await self.guard.call(
            lambda: self.adapter.list_after(cursor, self.settings.poll_limit), what="poll")
        received, unreadable = [], []
        for raw in items:
            try:
                received.append(await self._canonical(raw))
            except PermanentPeerError as exc:
                ident = str(raw.get("id", "?")) if isinstance(raw, dict) else "?"
                unreadable.append((ident, exc.reason))
        return PollBatch(received=received, cursor=next_cursor, unreadable=unreadable)

    async def send_correction(self, command: CorrectionRequested) -> CorrectionSent:
        """Send a correction (補正依頼) back to the contractor; idempotent on its id."""
        body = correction_to_peer(command)
        reference = await self.guard.call(
            lambda: self.adapter.post_correction(command.application_id,
                                                 str(command.correction_id), body),
            what="correction")
        return CorrectionSent(correction_id=command.correction_id,
                              application_id=command.application_id, peer_reference=reference)

    @staticmethod
    def envelope(received: ApplicationReceived, *, procuring_entity: str) -> Envelope[Any]:
        """The envelope to publish: keyed by the case, one id per application."""
        return new_envelope(received, correlation_id=received.case_id,
                            procuring_entity=procuring_entity, producer=PRODUCER,
                            message_id=message_id_for(received.application_id))

    async def _canonical(self, raw: Any) -> ApplicationReceived:
        try:
            first = application_from_peer(raw)
        except PeerFormatError as exc:
            raise PermanentPeerError(NAME, f"unreadable application: {exc}") from None
        notices: list[SuretyKeyNotice] = []
        problems: list[RuleViolation] = []
        for att in first.attachments:
            if att.form is not FormKind.SURETY_KEY_NOTICE:
                continue
            content = await self._download(first.application_id, att)
            try:  # in a child process under limits, never on the event loop (DAT-4)
                notice = await read_key_notice_isolated(content, self.settings.notice_limits())
            except KeyNoticeUnreadable as exc:
                problems.append(exc.violation)
                continue
            notices.append(SuretyKeyNotice(attachment_id=att.attachment_id,
                                           **notice.model_dump()))
        return application_from_peer(raw, notices=tuple(notices), problems=tuple(problems))

    async def _download(self, application_id: str, att: AttachmentRef) -> bytes:
        return await self.guard.call(
            lambda: self.adapter.download(application_id, att.attachment_id, att.sha256),
            what="download")

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        await self.adapter.aclose()
