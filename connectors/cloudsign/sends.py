"""The send journal: what makes a CloudSign send idempotent across crashes (CON-2).

Sending a contract set is several calls (create the document, upload, add the parties,
send), and the hub commits ``ContractSent`` only after the last one. A process that dies
in between gets the same ``ContractSendRequested`` again (at-least-once delivery). So,
per request id, the journal keeps on disk, each step flushed before the next call:

1. the intent, written before ``POST /documents``, with its time;
2. the document id, written as soon as CloudSign answered the create.

On a delivery with an entry, the connector continues the recorded document (re-read by
its id: files, parties and sending that are missing) instead of creating another. An
intent without a document id means the process died between CloudSign's create and the
journal's write: the document, if CloudSign made it, carries the request's key in its
``note`` (``mapping.request_key``), and the connector looks for it among the documents
processed since the intent (``GET /documents``, ``from``) before creating one.

One JSON file per request under ``<document_dir>/.sends`` (0600, written whole and
fsynced). The journal lives with the document store, which every process that sends
shares anyway. Entries older than ``KEEP`` are removed as new ones are written: a
delivery is settled long before.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors._shared.files import FILE_MODE, private_dir

__all__ = ["KEEP", "SendJournal", "SendRecord"]

KEEP = timedelta(days=30)


@dataclass(frozen=True)
class SendRecord:
    request_id: uuid.UUID
    intended_at: datetime
    document_id: str | None = None


class SendJournal:
    def __init__(self, root: Path) -> None:
        self.root = root / ".sends"
        self._pruned_at = float("-inf")

    def _path(self, request_id: uuid.UUID) -> Path:
        return self.root / f"{request_id}.json"

    def get(self, request_id: uuid.UUID) -> SendRecord | None:
        try:
            data = json.loads(self._path(request_id).read_text("utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn file cannot happen (atomic write); treat as an intent
            return SendRecord(request_id, datetime.fromtimestamp(0, UTC))
        return SendRecord(request_id, datetime.fromisoformat(data["intended_at"]),
                          data.get("document_id"))

    def intend(self, request_id: uuid.UUID, at: datetime) -> SendRecord:
        """Record the intent to create a document for ``request_id`` (before the call)."""
        record = SendRecord(request_id, at)
        self._write(record)
        self._prune(at)
        return record

    def created(self, record: SendRecord, document_id: str) -> SendRecord:
        """Record the document CloudSign created for ``record``."""
        done = SendRecord(record.request_id, record.intended_at, document_id)
        self._write(done)
        return done

    def _write(self, record: SendRecord) -> None:
        private_dir(self.root)
        path = self._path(record.request_id)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        body = json.dumps({"request_id": str(record.request_id),
                           "intended_at": record.intended_at.isoformat(),
                           "document_id": record.document_id}).encode()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.replace(path)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def _prune(self, now: datetime) -> None:
        """Remove entries older than KEEP, at most once an hour per process."""
        if time.monotonic() - self._pruned_at < 3600:
            return
        self._pruned_at = time.monotonic()
        cutoff = (now - KEEP).timestamp()
        for path in self.root.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue
