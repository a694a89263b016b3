"""Import 資格審査情報 from CSV (the entity's list of qualified companies, REG-3).

Header row with the field names of :class:`schemas.qualification.QualificationRecord`
(``user_id``, ``trade_name``, ``head_office_address``, ``representative_name``,
``contractor_name`` required; the others optional, empty meaning none) and an optional
``password`` column, turned into a salted scrypt verifier at once: the password is
never stored. UTF-8 (a BOM is accepted). Every row is checked before any is written.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import Session

from pipelines.registration.store import make_password_verifier, upsert_qualification
from schemas.qualification import QualificationRecord
from schemas.registration import Domain

__all__ = ["QualificationCsvError", "import_qualifications_csv", "read_qualifications_csv"]

_FIELDS = set(QualificationRecord.model_fields)


class QualificationCsvError(ValueError):
    """The CSV cannot be imported; the message names the line and the field."""


def read_qualifications_csv(text: str) -> list[tuple[QualificationRecord, str | None]]:
    """Parse and validate every row: (record, password or None)."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    unknown = set(reader.fieldnames or ()) - _FIELDS - {"password"}
    if unknown:
        raise QualificationCsvError(f"unknown columns: {', '.join(sorted(unknown))}")
    rows: list[tuple[QualificationRecord, str | None]] = []
    for line, raw in enumerate(reader, start=2):
        values = {k: (v.strip() or None) for k, v in raw.items() if k in _FIELDS and v is not None}
        try:
            record = QualificationRecord.model_validate_json(json.dumps(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise QualificationCsvError(f"line {line}: {where}: {first['msg']}") from None
        rows.append((record, (raw.get("password") or "").strip() or None))
    return rows


def import_qualifications_csv(session: Session, source: str | Path, entity: str,
                              domain: Domain, now: datetime) -> int:
    """Import a CSV file (path) or text into ``reg_qualification``; the number of rows."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    rows = read_qualifications_csv(text)
    for record, password in rows:
        verifier = make_password_verifier(password) if password else None
        upsert_qualification(session, entity, domain, record, now, password_verifier=verifier)
    return len(rows)
