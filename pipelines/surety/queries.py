"""Read-side queries of the surety pipeline for the contract office (SUR-5).

Paper originals are a tracked manual task: these list what is still to arrive, and
what is overdue (its contract date has passed), for a screen, a report or a reminder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from pipelines.surety.models import PaperTaskRow
from schemas.surety import SuretyProduct

__all__ = ["PaperTaskView", "open_paper_tasks"]


@dataclass(frozen=True)
class PaperTaskView:
    task_id: str
    case_id: str
    product: SuretyProduct
    due_date: date
    overdue: bool


def open_paper_tasks(session: Session, today: date, *,
                     overdue_only: bool = False) -> list[PaperTaskView]:
    """Open paper tasks, earliest due first; ``overdue``: the due date is before ``today``."""
    query = select(PaperTaskRow).where(PaperTaskRow.status == "open")
    if overdue_only:
        query = query.where(col(PaperTaskRow.due_date) < today)
    rows = session.exec(query.order_by(col(PaperTaskRow.due_date), col(PaperTaskRow.task_id)))
    return [PaperTaskView(r.task_id, r.case_id, SuretyProduct(r.product), r.due_date,
                          r.due_date < today) for r in rows]
