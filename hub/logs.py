"""Structured logs: one JSON object a line, carrying the correlation id, never a secret.

The correlation id of the message being handled travels in a context variable
and is added to every record. Anything that looks like a secret (PIN, password,
private key, token, a password in a URL) is masked before a record is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["correlation", "redact_text", "setup_logging"]

correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation", default=None
)

_SECRET_WORDS = (
    r"(?:pin|password|passwd|pwd|secret|token|private[_ -]?key|api[_-]?key|auth[_-]?key"  # noqa: S105
    r"|暗証番号|パスワード|認証キー)"
)
_PATTERNS = (
    (re.compile(rf"(?i)(\b{_SECRET_WORDS}\b\s*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}}]+)"), r"\1***"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)"), r"\1***\3"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
                re.S), "[private key removed]"),
)


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a secret masked."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        if (cid := correlation.get()) is not None:
            out["correlation_id"] = cid
        for key, value in getattr(record, "fields", {}).items():
            out[key] = redact_text(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            out["error"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        cid = correlation.get()
        prefix = f"[{cid}] " if cid else ""
        text = f"{record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact_text(text)


class _KnownNoise(logging.Filter):
    """Drops or lowers library messages that look like failures but are expected here.

    - FastStream warns on every subscriber that it does not create topics: the hub never
      lets clients create topics; ``hub topics apply`` declares them (and ``hub demo``
      runs it), so the warning says nothing an operator can act on.
    - aiokafka logs a failed group-coordinator lookup as an error while the broker is
      still electing the coordinator of a new group, and retries until it is found:
      lowered to INFO. A coordinator that never appears still shows as the consumer's
      lag and in ``/readyz``.
    - pyHanko warns when a signature embeds validation info without fetching it: the
      hub's signers validate offline by design, with the chain and revocation info they
      were given, so no signing host needs to reach the internet.
    """

    _DROPPED = ("Auto create topics is disabled. Make sure the topics exist.",
                "Validation/revocation info will be embedded, but fetching is not allowed.")
    _RETRIED = ("GroupCoordinatorNotAvailable", "CoordinatorNotAvailable",
                "CoordinatorLoadInProgress")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(self._DROPPED):
            return False
        if (record.levelno >= logging.ERROR and record.name.startswith("aiokafka")
                and text.startswith("Group Coordinator Request failed")
                and any(word in text for word in self._RETRIED)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_KnownNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faststream", "hub.kafka", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
