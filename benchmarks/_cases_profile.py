"""The hub's cProfile in bench_cases: where a complete case's hub time goes."""

from __future__ import annotations

import io
import pstats
from pathlib import Path
from typing import Any

__all__ = ["WHERE", "profile_summary"]

WHERE = {
    "contract job: sign_for_city (city B-LT signing)": ("jobs.py", "sign_for_city"),
    "citysigner: CitySigner.sign": ("signer.py", "sign"),
    "contract job: collect_contractor_signatures": ("jobs.py", "collect_contractor_signatures"),
    "contract job: expire_review_links": ("jobs.py", "expire_review_links"),
    "gateway: validation of the contractor's signature": ("validation.py", "validate_signed"),
    "staff API: archive router (all requests)": ("archive_api.py", "run_in_threadpool"),
    "processing.Processor._apply (consumer batches)": ("processing.py", "_apply"),
    "outbox relay: publish": ("outbox.py", "insert_records"),
    "psycopg waiting for PostgreSQL": ("connection.py", "wait"),
    "SQLAlchemy Session.execute (all statements)": ("session.py", "_execute_internal"),
    "pyHanko: async_sign_pdf": ("pdf_signer.py", "async_sign_pdf"),
    "pyHanko certvalidator: validate path": ("context.py", "__init__"),
}
"""Cumulative seconds of these functions (file, function), as bench_registration reports."""


def profile_summary(path: Path, top: int = 30) -> dict[str, Any]:
    stats = pstats.Stats(str(path)).strip_dirs()
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    out: dict[str, Any] = {
        "total_s": round(stats.total_tt, 1),  # type: ignore[attr-defined]
        "cumulative_s": {label: round(sum(v[3] for (file, _, func), v in raw.items()
                                          if file == f and func == fn), 2)
                         for label, (f, fn) in WHERE.items()},
        "calls": {label: sum(v[1] for (file, _, func), v in raw.items()
                             if file == f and func == fn)
                  for label, (f, fn) in WHERE.items()},
    }
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(path), stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        out[key] = buf.getvalue()
    return out
