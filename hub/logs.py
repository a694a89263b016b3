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


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faststream", "hub.kafka", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
