"""The CloudSign connector: what the hub calls to conclude an e-contract (CON-2, CON-4, CON-6).

Entry points:

- ``await connector.send(command)`` for ``Topics.CONTRACT_COMMANDS``
  (:class:`ContractSendRequested`) → :class:`ContractSent` for CONTRACT_EVENTS:
  create the document, upload the set, add the parties in order, send it;
- ``await connector.conclude(document_id, case_id, claimed)`` after CloudSign's
  webhook (see ``inbound``; the hub found ``case_id`` by the document id it keeps)
  → :class:`ContractConcluded` (signed PDFs and 合意締結証明書 stored),
  :class:`ContractDeclined`, or ``None`` while the document is still in progress.
  The webhook carries no signature, so its ``status`` is never believed: the
  document is re-read through the API and only what the API says counts. A webhook
  that claimed an end (2 or 3) the API does not show yet is retried (transient):
  webhooks are deduplicated per (document, status), so dropping it would lose the
  conclusion for good.

Every HTTP call goes through the Guard on its own, so a failed upload retries the
upload, not the whole document. A send is idempotent per request id, also across a crash
between CloudSign's answers and the hub's commit: the send journal (``sends``) records the
intent before the document is created and its id right after, and a request seen before
continues its document.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors._shared import Guard, Health, PermanentPeerError, TransientPeerError
from connectors._shared.httpkit import classify_httpx
from connectors.cloudsign.adapter import NAME, CloudSignAdapter
from connectors.cloudsign.documents import DocumentStore, DocumentTampered, FileDocumentStore
from connectors.cloudsign.mapping import (
    PeerDocument,
    declined,
    document_form,
    participant_form,
    request_key,
)
from connectors.cloudsign.sends import SendJournal
from connectors.cloudsign.settings import CloudSignSettings
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
    ContractParticipant,
    ContractSendRequested,
    ContractSent,
    DocumentRef,
    SignedDocumentStatus,
)
from schemas.envelope import Envelope, new_envelope
from schemas.ids import keyed_uuid
from schemas.rejection import RuleViolation

__all__ = ["PRODUCER", "CloudSignConnector"]

PRODUCER = "connector.cloudsign"
_ENDS = (SignedDocumentStatus.CONCLUDED.value, SignedDocumentStatus.CANCELLED.value)


class CloudSignConnector:
    name = NAME

    def __init__(self, settings: CloudSignSettings | None = None, *,
                 adapter: CloudSignAdapter | None = None, guard: Guard | None = None,
                 store: DocumentStore | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings or CloudSignSettings()
        self.adapter = adapter or CloudSignAdapter(self.settings)
        self.guard = guard or Guard.from_settings(NAME, self.settings, classify=classify_httpx)
        self.store = store or FileDocumentStore(self.settings.document_dir)
        self.journal = SendJournal(self.settings.document_dir)
        self._clock = clock

    async def send(self, command: ContractSendRequested) -> ContractSent:
        """Create, fill and send one document (CON-2), once per request id.

        Idempotent across crashes through the send journal (``sends``): a request seen
        before continues its document (the files, parties and sending it lacks) instead
        of creating another; a document already sent is answered as sent."""
        contents = [(ref.filename, self._read(ref)) for ref in command.files]
        doc = await self._document_for(command)
        if doc.status is SignedDocumentStatus.IN_PROGRESS:
            return ContractSent(request_id=command.request_id, document_id=doc.id,
                                sent_at=self._clock())
        if doc.status is not SignedDocumentStatus.DRAFT:
            raise PermanentPeerError(NAME, f"send: document {doc.id} of this request is in "
                                     f"status {doc.status.value} ({doc.status.name}), not a "
                                     "draft: it was sent and has ended")
        uploaded = Counter(f.name for f in doc.files)
        for filename, content in contents:
            if uploaded[filename] > 0:
                uploaded[filename] -= 1
                continue
            await self._upload(doc.id, filename, content)
        present = {p.email.lower() for p in doc.participants}
        for participant in command.participants:
            if participant.email.lower() not in present:
                await self._add(doc.id, participant)
        sent = await self.guard.call(lambda: self.adapter.send(doc.id), what="send")
        if sent.status is not SignedDocumentStatus.IN_PROGRESS:
            raise PermanentPeerError(NAME, f"send: document {doc.id} is in status "
                                     f"{sent.status.value} ({sent.status.name}), not 1 "
                                     "(先方確認中): CloudSign did not send it")
        return ContractSent(request_id=command.request_id, document_id=doc.id,
                            sent_at=self._clock())

    async def _document_for(self, command: ContractSendRequested) -> PeerDocument:
        """The request's document: the one the journal names, the one CloudSign made just
        before a crash (found by the request key in its note), or a new one."""
        record = self.journal.get(command.request_id)
        if record is not None and record.document_id is not None:
            document_id = record.document_id
            return await self.guard.call(lambda: self.adapter.get_document(document_id),
                                         what="get")
        if record is not None:
            found = await self._find(command.request_id, record.intended_at)
            if found is not None:
                self.journal.created(record, found.id)
                return found
        else:
            record = self.journal.intend(command.request_id, self._clock())
        doc = await self.guard.call(
            lambda: self.adapter.create_document(document_form(command)), what="create")
        self.journal.created(record, doc.id)
        return doc

    async def _find(self, request_id: uuid.UUID, since: datetime) -> PeerDocument | None:
        """The document whose note carries ``request_id``'s key, among those processed
        since ``since`` (a minute earlier, for clock skew)."""
        key = request_key(request_id)
        page, seen = 1, 0
        while True:
            total, documents = await self.guard.call(
                lambda page=page: self.adapter.list_documents(  # type: ignore[misc]
                    since=since - timedelta(minutes=1), page=page), what="list")
            for doc in documents:
                if key in doc.note:
                    return doc
            seen += len(documents)
            if not documents or seen >= total:
                return None
            page += 1

    async def conclude(self, document_id: str, case_id: str, claimed: int | None = None,
                       ) -> ContractConcluded | ContractDeclined | None:
        """Re-read the document a webhook named (``claimed``: the status it said) for the
        hub's case ``case_id``; store the signed set if concluded."""
        doc = await self.guard.call(lambda: self.adapter.get_document(document_id),
                                    what="get")
        at = doc.last_processed_at or doc.updated_at or self._clock()
        if doc.status is SignedDocumentStatus.CANCELLED:
            return declined(doc, case_id, at)
        if doc.status is not SignedDocumentStatus.CONCLUDED:
            if claimed in _ENDS and doc.status is SignedDocumentStatus.IN_PROGRESS:
                raise TransientPeerError(NAME, f"webhook said status {claimed} for document "
                                         f"{doc.id}; CloudSign still shows 1 (先方確認中)")
            return None
        signed = [await self._keep_file(doc, file_id, name)
                  for file_id, name in sorted((f.id, f.name) for f in doc.files)]
        certificate = self.store.put(
            f"{doc.title}_合意締結証明書.pdf",
            await self.guard.call(lambda: self.adapter.download_certificate(doc.id),
                                  what="certificate"))
        return ContractConcluded(document_id=doc.id, case_id=case_id, title=doc.title,
                                 concluded_at=at, signed_files=tuple(signed),
                                 certificate=certificate)

    @staticmethod
    def envelope(event: ContractConcluded | ContractDeclined | ContractSent, *,
                 case_id: str, procuring_entity: str) -> Envelope[Any]:
        """The envelope to publish. Conclusion and decline get one id per document (keyed
        with HUB_ID_KEY: not computable from the public document id), so a webhook
        CloudSign repeats is dropped by the idempotent consumer."""
        message_id = None
        if isinstance(event, ContractConcluded | ContractDeclined):
            message_id = keyed_uuid("cloudsign", f"{event.message_type}:{event.document_id}")
        return new_envelope(event, correlation_id=case_id, procuring_entity=procuring_entity,
                            producer=PRODUCER, message_id=message_id)

    def _read(self, ref: DocumentRef) -> bytes:
        try:
            return self.store.get(ref)
        except DocumentTampered as exc:
            raise PermanentPeerError(NAME, str(exc), (RuleViolation(
                rule_id="CON-5", message_ja="送信する契約書類が保存後に変更されています。",
                message_en="A contract document changed after it was stored.",
                next_step_ja="契約書類を作成し直してから送信してください。",
                next_step_en="Prepare the contract documents again, then send them.",
                field=ref.filename),)) from None
        except (OSError, ValueError) as exc:
            raise PermanentPeerError(NAME, f"document {ref.filename} cannot be read: "
                                     f"{type(exc).__name__}") from None

    async def _upload(self, document_id: str, filename: str, content: bytes) -> None:
        await self.guard.call(lambda: self.adapter.upload_file(document_id, filename, content),
                              what="upload")

    async def _add(self, document_id: str, participant: ContractParticipant) -> None:
        await self.guard.call(
            lambda: self.adapter.add_participant(document_id, participant_form(participant)),
            what="participant")

    async def _keep_file(self, doc: PeerDocument, file_id: str, name: str) -> DocumentRef:
        content = await self.guard.call(lambda: self.adapter.download_file(doc.id, file_id),
                                        what="download")
        return self.store.put(name, content)

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        await self.adapter.aclose()
