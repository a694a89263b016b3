"""D・Sure's certificate format ↔ the canonical :class:`schemas.surety.SuretyCertificate`.

D・Sure shows a certificate the way the paper 保証証書 reads (seed 002): Japanese
labels, amounts as ``50,000,000 円``, dates in 和暦 (``令和04年09月30日``), the
工期 as one range and the issue time in JST (``2023/09/04 12:00``). This module
reads that into the canonical fields of SUR-2 and refuses anything else with a
:class:`PeerFormatError` (the peer answered garbage: a transient failure).
Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.envelope import JST
from schemas.surety import (
    CertificateForm,
    SuretyCertificate,
    SuretyIssueKind,
    SuretyProduct,
)

__all__ = [
    "PeerFormatError",
    "certificate_from_peer",
    "certificate_to_peer",
    "lookup_request",
    "parse_wareki",
    "parse_yen",
    "wareki_padded",
]

T = TypeVar("T")
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925}
_ERA_STARTS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"), (date(1926, 12, 25), "昭和"))
_WAREKI = re.compile(r"^(令和|平成|昭和)(元|\d{1,2})年(\d{1,2})月(\d{1,2})日$")
_YEN = re.compile(r"^([\d,]+)\s*円?$")
_PRODUCTS = {"前払金保証": SuretyProduct.ADVANCE_PAYMENT, "契約保証": SuretyProduct.PERFORMANCE}
_KINDS = {"新規": SuretyIssueKind.NEW, "変更": SuretyIssueKind.CHANGE}


class PeerFormatError(ValueError):
    """D・Sure's answer is not a certificate we can read (names the field, no secrets)."""


def parse_wareki(text: str) -> date:
    """``令和04年09月30日`` (or 令和元年…) → ``date(2022, 9, 30)``."""
    match = _WAREKI.match(unicodedata.normalize("NFKC", text).strip())
    if not match:
        raise PeerFormatError(f"not a 和暦 date: {text!r}")
    era, year_text, month, day = match.groups()
    year = 1 if year_text == "元" else int(year_text)
    return date(_ERAS[era] + year, int(month), int(day))


def wareki_padded(day: date) -> str:
    """``date(2022, 9, 30)`` → ``令和04年09月30日``, the way D・Sure prints it."""
    for start, era in _ERA_STARTS:
        if day >= start:
            return f"{era}{day.year - _ERAS[era]:02d}年{day.month:02d}月{day.day:02d}日"
    raise ValueError(f"no 和暦 for {day.isoformat()}")


def parse_yen(text: str) -> int:
    """``50,000,000 円`` → ``50000000``."""
    match = _YEN.match(unicodedata.normalize("NFKC", text).strip())
    if not match:
        raise PeerFormatError(f"not an amount in yen: {text!r}")
    return int(match.group(1).replace(",", ""))


def _field(doc: dict[str, Any], label: str) -> str:
    value = doc.get(label)
    if not isinstance(value, str) or not value.strip():
        raise PeerFormatError(f"field {label} missing or empty")
    return value.strip()


def _choice(doc: dict[str, Any], label: str, choices: dict[str, T]) -> T:
    value = _field(doc, label)
    if value not in choices:
        raise PeerFormatError(f"field {label}: unknown value {value!r}")
    return choices[value]


def certificate_from_peer(body: Any) -> SuretyCertificate:
    """D・Sure's ``{"certificate": {...}}`` answer → :class:`SuretyCertificate`."""
    doc = body.get("certificate") if isinstance(body, dict) else None
    if not isinstance(doc, dict):
        raise PeerFormatError("answer has no certificate object")
    period = [p.strip() for p in re.split(r"[~〜～]", _field(doc, "工期"))]
    if len(period) != 2:
        raise PeerFormatError("field 工期 is not a range 'start ~ end'")
    try:
        issued = datetime.strptime(_field(doc, "電子保証発行日時"), "%Y/%m/%d %H:%M")
    except ValueError:
        raise PeerFormatError("field 電子保証発行日時 is not 'YYYY/MM/DD HH:MM'") from None
    depository = doc.get("預託金融機関")
    try:
        return SuretyCertificate(
            contract_number=_field(doc, "保証契約番号"),
            product=_choice(doc, "商品名", _PRODUCTS),
            issue_kind=_choice(doc, "対象", _KINDS),
            form=CertificateForm.ELECTRONIC,
            surety_company=_field(doc, "保証事業会社"),
            procuring_entity_name=_field(doc, "発注者名"),
            work_name=_field(doc, "工事名"),
            contractor_name=_field(doc, "保証契約者"),
            jv_name=(doc.get("JV名") or None) if isinstance(doc.get("JV名"), str) else None,
            contract_amount=parse_yen(_field(doc, "請負金額")),
            guarantee_amount=parse_yen(_field(doc, "保証金額")),
            guarantee_deadline=parse_wareki(_field(doc, "保証期限")),
            work_period_start=parse_wareki(period[0]),
            work_period_end=parse_wareki(period[1]),
            contract_date=parse_wareki(_field(doc, "請負契約日")),
            depository=depository.strip() if isinstance(depository, str) and depository else None,
            issued_at=issued.replace(tzinfo=JST),
        )
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        raise PeerFormatError(f"certificate fields out of range: {where}") from None


def certificate_to_peer(cert: SuretyCertificate) -> dict[str, str]:
    """The reverse of :func:`certificate_from_peer`: how D・Sure prints a certificate."""
    product = {v: k for k, v in _PRODUCTS.items()}[cert.product]
    kind = {v: k for k, v in _KINDS.items()}[cert.issue_kind]
    return {
        "保証契約番号": cert.contract_number,
        "商品名": product,
        "対象": kind,
        "保証事業会社": cert.surety_company,
        "発注者名": cert.procuring_entity_name,
        "工事名": cert.work_name,
        "保証契約者": cert.contractor_name,
        "JV名": cert.jv_name or "",
        "請負金額": f"{cert.contract_amount:,} 円",
        "保証金額": f"{cert.guarantee_amount:,} 円",
        "保証期限": wareki_padded(cert.guarantee_deadline),
        "工期": f"{wareki_padded(cert.work_period_start)} ~ {wareki_padded(cert.work_period_end)}",
        "請負契約日": wareki_padded(cert.contract_date),
        "預託金融機関": cert.depository or "",
        "電子保証発行日時": cert.issued_at.astimezone(JST).strftime("%Y/%m/%d %H:%M"),
    }


def lookup_request(contract_number: str, auth_key: str) -> dict[str, str]:
    """The body of D・Sure's lookup: 保証契約番号 + 認証キー (SUR-2)."""
    return {"contract_number": contract_number, "auth_key": auth_key}
