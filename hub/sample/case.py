"""The facts of one sample case and the documents it needs.

A 工事 awarded to a contractor at ``mlit`` (電子契約, open 24/365 so the sample runs at
any hour, WIN-2): its 資格審査情報 as the city's CSV import (REG-3), the contract facts
the city registers (案件情報, with 契約保証 and 前払金保証, SUR-2), the 開札 of the
contract process (CON-2), the 電子契約利用申出書 (CON-1), the certificates the surety
company publishes on D・Sure, and the contract set PDF the city prepares.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from pipelines.contract.pdfa import as_pdfa, japanese_font
from schemas.case import CaseRegistered, ExpectedSurety
from schemas.contract import ContractCaseOpened, ContractParty, ElectronicContractApplication
from schemas.envelope import JST
from schemas.surety import (
    CertificateForm,
    SuretyCertificate,
    SuretyIssueKind,
    SuretyProduct,
)

__all__ = ["SampleCase"]


def _party(name: str, email: str) -> ContractParty:
    return ContractParty(name=name, email=email)


@dataclass(frozen=True)
class SampleCase:
    """One contractor and one case; :meth:`new` makes fresh IDs each time."""

    user_id: str
    case_id: str
    entity: str = "mlit"
    network: str = "mlit"
    trade_name: str = "北東組株式会社"
    holder: str = "北東 次郎"
    representative: str = "日立 二郎"
    address: str = "北東市中央町2丁目3番4号"
    corporate_number: str = "5835678256246"
    subject: str = "市道１号線舗装工事"
    work_place: str = "北東市中央町地内"
    amount_yen: int = 50_000_000
    city_name: str = "国土交通省 北東国道事務所"
    city_officer: ContractParty = field(
        default_factory=lambda: _party("契約 花子", "keiyaku@city.example.jp"))
    authorized: ContractParty = field(
        default_factory=lambda: _party("北東 一郎", "director@hokuto.example.jp"))
    officer: ContractParty = field(
        default_factory=lambda: _party("北東 三郎", "keiyaku@hokuto.example.jp"))
    card_email: str = "ic-card@hokuto.example.jp"
    today: date = field(default_factory=lambda: datetime.now(JST).date())
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    """The 資格審査情報 password (REG-3): typed into the card agent, never shown."""

    @classmethod
    def new(cls, **overrides: Any) -> SampleCase:
        user_id = "".join(random.choice("0123456789") for _ in range(10))
        return cls(user_id=user_id, case_id=f"R8-{uuid.uuid4().hex[:8].upper()}", **overrides)

    @property
    def period(self) -> tuple[date, date]:
        """工期: from the contract date, 180 days."""
        return self.today, self.today + timedelta(days=180)

    @property
    def guarantees(self) -> dict[SuretyProduct, int]:
        """保証金額: 契約保証 10 % and 前払金保証 40 % of the 請負金額."""
        return {SuretyProduct.PERFORMANCE: self.amount_yen // 10,
                SuretyProduct.ADVANCE_PAYMENT: self.amount_yen * 4 // 10}

    depository: str = "北東銀行 中央支店"

    def qualification_csv(self) -> str:
        """The city's 資格審査情報 export for this contractor, with its password column."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["user_id", "trade_name", "postal_code", "head_office_address",
                         "representative_name", "representative_title", "contractor_name",
                         "corporate_number", "password"])
        writer.writerow([self.user_id, self.trade_name, "123-0000", self.address,
                         self.representative, "代表取締役社長", self.holder,
                         self.corporate_number, self.password])
        return out.getvalue()

    def contact(self, email: str, person: str = "日立 次郎") -> dict[str, str]:
        return {"contact_name": "営業部", "postal_code": "123-0000", "address": self.address,
                "person_name": person, "phone": "044-812-7358", "fax": "044-812-8681",
                "email": email, "email_confirmation": email}

    def registration_fields(self) -> dict[str, Any]:
        """What the contractor types into the card agent's 利用者登録 (REG-7)."""
        return {"procuring_entity": self.entity, "system": "e-contract", "domain": "works",
                "user_id": self.user_id, "trade_name": "北東組(株)", "department_name": "営業部",
                "representative_contact": self.contact("hokuto@example.jp"),
                "card_department_contact": self.contact(self.card_email),
                "apply_now_to": []}

    def registered(self, company_id: str) -> CaseRegistered:
        """案件情報 the city's contract office registers after award (SUR-2's reference)."""
        start, end = self.period
        sureties = tuple(ExpectedSurety(
            product=product, form=CertificateForm.ELECTRONIC, guarantee_amount=amount,
            guarantee_deadline=end,
            depository=self.depository if product is SuretyProduct.ADVANCE_PAYMENT else None)
            for product, amount in self.guarantees.items())
        return CaseRegistered(
            case_id=self.case_id, contract_number=self.case_id,
            procuring_entity_name=self.city_name, work_name=self.subject,
            contractor_id=company_id, contractor_name=self.trade_name,
            contract_amount=self.amount_yen, contract_date=start, work_period_start=start,
            work_period_end=end, sureties=sureties, notice_email=self.officer.email)

    def opened(self, now: datetime, company_id: str) -> ContractCaseOpened:
        """開札: the contract process starts for this case (CON-2), 契約保証 required;
        the 企業ID and 工期 go on to the ERP at conclusion."""
        return ContractCaseOpened(
            case_id=self.case_id, subject=self.subject, amount_yen=self.amount_yen,
            contractor_network=self.network, contractor_user_id=self.user_id,
            contractor_name=self.trade_name, city_name=self.city_name,
            city_officer=self.city_officer, surety_required=True, opened_at=now,
            contractor_id=company_id, period_start=self.period[0], period_end=self.period[1])

    def application(self, now: datetime) -> ElectronicContractApplication:
        """電子契約利用申出書 (CON-1): the 権限者 and one 契約担当者."""
        return ElectronicContractApplication(
            case_id=self.case_id, work_name=self.subject, work_place=self.work_place,
            authorized=self.authorized, officers=(self.officer,), applied_at=now)

    def certificate(self, product: SuretyProduct, number: str) -> SuretyCertificate:
        """The certificate the surety company publishes on D・Sure, matching the case."""
        start, end = self.period
        return SuretyCertificate(
            contract_number=number, product=product, issue_kind=SuretyIssueKind.NEW,
            surety_company="東日本建設業保証株式会社", procuring_entity_name=self.city_name,
            work_name=self.subject, contractor_name=self.trade_name,
            contract_amount=self.amount_yen, guarantee_amount=self.guarantees[product],
            guarantee_deadline=end, work_period_start=start, work_period_end=end,
            contract_date=start,
            depository=self.depository if product is SuretyProduct.ADVANCE_PAYMENT else None,
            issued_at=datetime.now(JST))

    def contract_pdf(self) -> bytes:
        """工事請負契約書: the contract set the city prepares (one page, Japanese, IPAex明朝
        embedded, PDF/A-2b metadata; pipelines/contract/pdfa.py)."""
        font = japanese_font("IPAexMincho")
        out = io.BytesIO()
        pdf = canvas.Canvas(out, pagesize=A4, initialFontName=font)
        title = f"工事請負契約書 {self.case_id}"
        pdf.setTitle(title)
        pdf.setFont(font, 18)
        pdf.drawString(200, 780, "工事請負契約書")
        pdf.setFont(font, 11)
        start, end = self.period
        surety = self.guarantees[SuretyProduct.PERFORMANCE]
        lines = [f"契約番号: {self.case_id}", f"工事名: {self.subject}",
                 f"工事場所: {self.work_place}", f"工期: {start} から {end} まで",
                 f"請負代金額: 金 {self.amount_yen:,} 円 (消費税及び地方消費税の額を含む)",
                 f"契約保証金: 保証証書 (電子) 金 {surety:,} 円",
                 "", f"発注者: {self.city_name}", f"受注者: {self.trade_name} {self.address}",
                 "", "上記の工事について、発注者と受注者は、各々の対等な立場における合意に",
                 "基づいて、別添の条項によって公正な請負契約を締結し、信義に従って誠実に",
                 "これを履行する。本契約の証として電子署名を施し、各自その電磁的記録を保管する。"]
        for i, text in enumerate(lines):
            pdf.drawString(60, 730 - 20 * i, text)
        pdf.save()
        return as_pdfa(out.getvalue(), title=title, author=self.city_name,
                       subject=self.subject, at=datetime.now(JST))
