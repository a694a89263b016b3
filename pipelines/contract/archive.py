"""The contract archive: list, search, 合意締結証明書 and re-validation (CON-5, CON-6, CON-7).

- :func:`search_contracts` lists cases with status (agreed n/m), subject, parties and last
  update (CON-6), filtered by conclusion date, amount and counterparty (電子帳簿保存法's
  search requirements, CON-7).
- :func:`conclusion_certificate` builds the 合意締結証明書 of a concluded case: parties,
  when each agreed, the signed document's SHA-256, and every signature with its
  timestamp as re-validated now (CON-6); :func:`certificate_pdf` renders it as a PDF.
- :func:`revalidate` validates the stored signed PDF again with pyHanko (CON-5: any edit
  invalidates; the archive keeps the bytes content-addressed, so it shows).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from connectors.citysigner.verify import ValidationReport, validate_contract_pdf
from pipelines.contract.models import CaseRow
from pipelines.contract.pdfa import as_pdfa, japanese_font
from pipelines.contract.state import CaseState
from pipelines.contract.store import get_document, load_case, stored_bytes
from schemas.contract import ContractStatus, DocumentRef
from schemas.envelope import JST
from schemas.text import show_datetime, trade_name_key

__all__ = [
    "COUNT_CAP",
    "CertificateParty",
    "CertificateSignature",
    "ConclusionCertificate",
    "ContractListItem",
    "NotConcludedError",
    "certificate_pdf",
    "conclusion_certificate",
    "count_contracts",
    "page_cursor",
    "parse_cursor",
    "revalidate",
    "search_contracts",
]


class NotConcludedError(LookupError):
    """No concluded contract for this case (CON-6: a certificate needs the conclusion)."""


class ContractListItem(BaseModel):
    """One line of the contract list (CON-6)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    subject: str
    status: ContractStatus
    agreed: int
    parties: int
    party_names: tuple[str, str]
    amount_yen: int
    updated_at: datetime
    concluded_at: datetime | None

    @property
    def agreed_label(self) -> str:
        return f"{self.agreed}/{self.parties}"


class CertificateParty(BaseModel):
    role: str
    name: str
    addresses: tuple[str, ...]
    agreed_at: datetime | None


class CertificateSignature(BaseModel):
    field_name: str
    signer: str
    timestamped_at: datetime | None
    valid: bool


class ConclusionCertificate(BaseModel):
    """合意締結証明書 (CON-6)."""

    case_id: str
    subject: str
    amount_yen: int
    concluded_at: datetime
    parties: tuple[CertificateParty, ...]
    document: DocumentRef
    signatures: tuple[CertificateSignature, ...]
    signatures_valid: bool
    issued_at: datetime


def _aware(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; the hub stores UTC.
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


COUNT_CAP = 10_000
""":func:`count_contracts` counts up to this many and then stops: a page says "10,000+"
rather than counting every case of a large archive on each search."""


def page_cursor(updated_at: datetime, case_id: str) -> str:
    """The ``after`` of the page that follows the case ``case_id`` (keyset pagination:
    a deep page costs what the first one does)."""
    at = _aware(updated_at) or updated_at
    text = f"{at.astimezone(UTC).isoformat(timespec='microseconds')}|{case_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """(last update, case id) of a :func:`page_cursor`; ``ValueError`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, case_id = text.split("|", 1)
        found = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValueError("not a page cursor of the contract list") from None
    if found.tzinfo is None or not case_id:
        raise ValueError("not a page cursor of the contract list")
    return found.astimezone(UTC), case_id


def _filtered(query: Any, *, concluded_from: datetime | None, concluded_to: datetime | None,
              amount_min: int | None, amount_max: int | None, counterparty: str | None,
              status: ContractStatus | None, entities: Iterable[str] | None) -> Any:
    if entities is not None:
        wanted = sorted(set(entities))
        # one entity (the usual caller): an equality, which the (entity, ...) indexes serve
        query = query.where(col(CaseRow.procuring_entity) == wanted[0] if len(wanted) == 1
                            else col(CaseRow.procuring_entity).in_(wanted))
    if concluded_from is not None:
        query = query.where(col(CaseRow.concluded_at) >= concluded_from)
    if concluded_to is not None:
        query = query.where(col(CaseRow.concluded_at) < concluded_to)
    if amount_min is not None:
        query = query.where(col(CaseRow.amount_yen) >= amount_min)
    if amount_max is not None:
        query = query.where(col(CaseRow.amount_yen) <= amount_max)
    if counterparty and (key := trade_name_key(counterparty)):
        # Both sides compared as 商号 keys (stored once per case; PostgreSQL finds the
        # substring through a trigram index): full-width, half-width, (株) or 株式会社,
        # with or without spaces, all find the same company.
        query = query.where(col(CaseRow.contractor_key).contains(key, autoescape=True))
    if status is not None:
        query = query.where(CaseRow.status == status.value)
    return query


def search_contracts(session: Session, *, concluded_from: datetime | None = None,
                     concluded_to: datetime | None = None, amount_min: int | None = None,
                     amount_max: int | None = None, counterparty: str | None = None,
                     status: ContractStatus | None = None, limit: int = 100,
                     after: str | None = None, entities: Iterable[str] | None = None,
                     ) -> list[ContractListItem]:
    """Cases matching every given filter, most recently updated first (CON-6, CON-7).

    ``entities``: only these procuring entities' cases (the caller's, docs/identity.md);
    ``None`` is every entity. ``after``: the :func:`page_cursor` of the previous page's
    last case; the page starts right after it (``ValueError`` if it is no cursor).
    """
    query = _filtered(select(CaseRow), concluded_from=concluded_from,
                      concluded_to=concluded_to, amount_min=amount_min, amount_max=amount_max,
                      counterparty=counterparty, status=status, entities=entities)
    if after:
        at, case_id = parse_cursor(after)
        # the first condition alone bounds an index range: the page starts at the cursor
        # instead of filtering every newer case
        query = query.where(col(CaseRow.updated_at) <= at).where(sa.or_(
            col(CaseRow.updated_at) < at, sa.and_(col(CaseRow.updated_at) == at,
                                                  col(CaseRow.case_id) > case_id)))
    query = query.order_by(col(CaseRow.updated_at).desc(), col(CaseRow.case_id)).limit(limit)
    return [ContractListItem(
        case_id=r.case_id, subject=r.subject, status=ContractStatus(r.status), agreed=r.agreed,
        parties=r.parties, party_names=(r.contractor_name, r.city_name), amount_yen=r.amount_yen,
        updated_at=_aware(r.updated_at) or r.updated_at, concluded_at=_aware(r.concluded_at))
        for r in session.exec(query)]


def count_contracts(session: Session, *, concluded_from: datetime | None = None,
                    concluded_to: datetime | None = None, amount_min: int | None = None,
                    amount_max: int | None = None, counterparty: str | None = None,
                    status: ContractStatus | None = None, entities: Iterable[str] | None = None,
                    cap: int | None = None, **_: Any) -> int:
    """How many cases match (the filters of :func:`search_contracts`), counted up to
    ``cap`` + 1 (default :data:`COUNT_CAP`): more than ``cap`` means "cap+"."""
    cap = COUNT_CAP if cap is None else cap
    inner = _filtered(select(col(CaseRow.case_id)), concluded_from=concluded_from,
                      concluded_to=concluded_to, amount_min=amount_min, amount_max=amount_max,
                      counterparty=counterparty, status=status, entities=entities
                      ).limit(cap + 1).subquery()
    return int(session.exec(select(sa.func.count()).select_from(inner)).one())


def _concluded(session: Session, case_id: str) -> tuple[CaseState, bytes]:
    state = load_case(session, case_id)
    if state is None or state.signed is None or state.concluded_at is None:
        raise NotConcludedError(f"CON-6: case {case_id} has no concluded contract")
    return state, get_document(session, state.signed)


def revalidate(session: Session, case_id: str,
               roots: Iterable[x509.Certificate]) -> ValidationReport:
    """CON-5: validate the archived signed PDF of ``case_id`` again, now, as it is stored.

    An edit of the stored bytes shows twice: as a SHA-256 that is no longer the archived
    one, and as signatures that no longer validate.
    """
    state = load_case(session, case_id)
    if state is None or state.signed is None:
        raise NotConcludedError(f"CON-6: case {case_id} has no concluded contract")
    pdf = stored_bytes(session, state.signed)
    if pdf is None:
        raise NotConcludedError(f"CON-7: the signed PDF of case {case_id} is missing")
    report = validate_contract_pdf(pdf, roots)
    if hashlib.sha256(pdf).hexdigest() != state.signed.sha256:
        extra = ("CON-5: the stored PDF is not the archived one (SHA-256 differs)",)
        return ValidationReport(report.signatures, report.problems + extra)
    return report


def conclusion_certificate(session: Session, case_id: str, roots: Iterable[x509.Certificate],
                           now: datetime) -> ConclusionCertificate:
    """The 合意締結証明書 of a concluded case, its signatures re-validated now (CON-6)."""
    state, pdf = _concluded(session, case_id)
    report = validate_contract_pdf(pdf, roots)
    assert state.signed is not None
    assert state.concluded_at is not None
    contractor_at = state.contractor_agreed_at or state.concluded_at
    city_at = state.city_agreed_at or state.concluded_at
    return ConclusionCertificate(
        case_id=state.case_id, subject=state.subject, amount_yen=state.amount_yen,
        concluded_at=state.concluded_at,
        parties=(CertificateParty(role="受注者", name=state.contractor_name,
                                  addresses=state.declared_addresses, agreed_at=contractor_at),
                 CertificateParty(role="発注者", name=state.city_name,
                                  addresses=(state.city_officer.email,), agreed_at=city_at)),
        document=state.signed,
        signatures=tuple(CertificateSignature(field_name=s.field_name, signer=s.signer,
                                              timestamped_at=s.timestamped_at, valid=s.ok)
                         for s in report.signatures),
        signatures_valid=report.valid, issued_at=now)


def _jst(at: datetime | None) -> str:
    return f"{show_datetime(at)}:{at.astimezone(JST):%S}" if at else "-"


def certificate_pdf(cert: ConclusionCertificate) -> bytes:
    """The 合意締結証明書 as a one-page PDF: IPAexゴシック embedded, PDF/A-2b metadata
    (:mod:`pipelines.contract.pdfa`). Raises ``JapaneseFontMissingError`` without the font."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = japanese_font("IPAexGothic")
    out = BytesIO()
    page = canvas.Canvas(out, pagesize=A4, initialFontName=font)
    title = f"合意締結証明書 {cert.case_id}"
    page.setTitle(title)
    lines = [
        ("合意締結証明書", 16),
        (f"案件番号: {cert.case_id}", 10), (f"件名: {cert.subject}", 10),
        (f"契約金額: {cert.amount_yen:,}円", 10), (f"締結日時: {_jst(cert.concluded_at)}", 10),
        (f"文書: {cert.document.filename} ({cert.document.size_bytes:,} bytes)", 10),
        (f"SHA-256: {cert.document.sha256}", 8),
    ]
    for party in cert.parties:
        lines.append((f"{party.role}: {party.name} 合意日時 {_jst(party.agreed_at)}", 10))
        lines.append(("    " + ", ".join(party.addresses), 8))
    for sig in cert.signatures:
        verdict = "有効" if sig.valid else "無効"
        lines.append((f"署名 {sig.field_name}: {verdict} / タイムスタンプ "
                      f"{_jst(sig.timestamped_at)}", 10))
        lines.append((f"    {sig.signer}", 8))
    lines.append((f"発行日時: {_jst(cert.issued_at)}", 10))
    y = 800.0
    for text, size in lines:
        page.setFont(font, size)
        page.drawString(50, y, text[:110])
        y -= size + 10
    page.save()
    return as_pdfa(out.getvalue(), title=title, author=cert.parties[-1].name,
                   subject=cert.subject, at=cert.issued_at)
