"""The hub's cProfile in bench_cases: where a complete case's hub time goes."""

from __future__ import annotations

import io
import pstats
from pathlib import Path
from typing import Any

__all__ = ["WHERE", "Sampler", "profile_summary"]

WHERE = {
    "city signer consumer (city B-LT signing)": ("jobs.py", "sign"),
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


_IDLE = {"select", "poll", "wait", "_wait_for_tstate_lock", "get", "acquire", "sleep",
         "accept", "recv", "recv_into", "_worker", "run_forever", "_run_once", "read",
         "readinto", "_recv_into", "getaddrinfo", "do_handshake", "_read_status", "readline"}
"""Leaf functions of a thread that waits (for I/O, a lock, a queue) rather than computes."""


class Sampler:
    """A sampling profiler over every thread of the process (cProfile sees one thread;
    the hub signs, validates and serves sync HTTP routes in worker threads). Every
    ``interval_s`` it records each busy thread's stack: the leaf (own time) and each
    function once per sample (cumulative). Samples land where a thread holds the GIL, so
    the shares say where the CPU goes, not where threads wait."""

    def __init__(self, interval_s: float = 0.005) -> None:
        import threading

        self.interval_s = interval_s
        self.samples = 0
        self.own: dict[str, int] = {}
        self.cumulative: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import sys
        import threading

        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            for ident, frame in sys._current_frames().items():
                if ident == me or frame.f_code.co_name in _IDLE:
                    continue
                self.samples += 1
                leaf = _label(frame)
                self.own[leaf] = self.own.get(leaf, 0) + 1
                seen: set[str] = set()
                f: Any = frame
                while f is not None:
                    seen.add(_label(f))
                    f = f.f_back
                for label in seen:
                    self.cumulative[label] = self.cumulative.get(label, 0) + 1

    def summary(self, top: int = 40) -> dict[str, Any]:
        def share(counts: dict[str, int]) -> dict[str, float]:
            best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
            return {k: round(100 * v / max(1, self.samples), 1) for k, v in best}

        return {"busy_samples": self.samples, "interval_s": self.interval_s,
                "own_pct": share(self.own),
                "cumulative_pct_project": share({k: v for k, v in self.cumulative.items()
                                                 if k.split(":")[0].split("/")[0] in _OURS}),
                "cumulative_pct_all": share(self.cumulative)}


_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_OURS = {"hub", "pipelines", "connectors", "schemas", "card_agent"}


def _label(frame: Any) -> str:
    path = frame.f_code.co_filename
    for marker in ("/site-packages/", _ROOT, "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{frame.f_code.co_name}"
