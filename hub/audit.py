"""The audit trail (docs/identity.md): kept in :mod:`pipelines.audit` so that pipelines
write their rows in their own transactions; the hub's routes and commands use it here."""

from __future__ import annotations

from pipelines.audit import (
    GENESIS,
    PRUNED,
    AuditRecord,
    ChainReport,
    prune,
    record,
    record_alone,
    rows,
    verify,
)

__all__ = ["GENESIS", "PRUNED", "AuditRecord", "ChainReport", "prune", "record", "record_alone",
           "rows", "verify"]
