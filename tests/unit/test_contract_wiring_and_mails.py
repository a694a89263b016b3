"""The contract process's wiring (consumer, jobs) and its mails against the mail
connector's own templates (CON-3, CON-4, NTF-2)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from connectors.mail.templates import render, required_values
from hub.contract.wiring import consumers, jobs
from pipelines.contract.handlers import COMMANDS, HANDLERS
from pipelines.contract.mails import concluded_mails, review_mail
from pipelines.contract.state import CaseState, ContractPolicy, ReviewLink
from schemas.cloudsign import ContractConcluded, ContractDeclined, ContractSent
from schemas.contract import ContractParty, ContractRoute, ContractStatus, DocumentRef
from schemas.erp import ErpRegistrationRequested
from schemas.surety import ContractSuretyCompleted
from schemas.topics import Topics

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
PDF = b"%PDF-signed"


def concluded() -> CaseState:
    digest = hashlib.sha256(PDF).hexdigest()
    return CaseState(
        case_id="R8-001", procuring_entity="ashikaga-city", subject="市道改良工事",
        amount_yen=1, contractor_network="n", contractor_user_id="U1",
        contractor_name="デモ建設株式会社", city_name="足利市",
        city_officer=ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp"),
        route=ContractRoute.CARD, status=ContractStatus.CONCLUDED, opened_at=T0,
        updated_at=T0, authorized=ContractParty(name="足利 一郎", email="boss@demo.co.jp"),
        signed=DocumentRef(uri=f"contract-doc:{digest}", filename="R8-001.pdf",
                           size_bytes=len(PDF), sha256=digest), concluded_at=T0)


def test_consumer_reads_commands_cloudsign_and_surety_events() -> None:
    (spec,) = consumers()
    assert spec.name == "contract"
    assert spec.topics == (Topics.CONTRACT_COMMANDS, Topics.CONTRACT_EVENTS,
                           Topics.SURETY_EVENTS)
    assert set(HANDLERS) == {*COMMANDS, ContractSent, ContractConcluded, ContractDeclined,
                             ContractSuretyCompleted}
    assert all(not spec.is_effect(h) for h in HANDLERS.values())  # transactional
    emitted = dict(spec.emits)
    assert emitted[Topics.ERP_COMMANDS] == (ErpRegistrationRequested,)  # 契約登録 on conclusion


def test_jobs_without_and_with_a_city_signer() -> None:
    class Signer:
        async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> object:
            raise AssertionError("not called here")

    assert [j.name for j in jobs()] == ["contract-timeouts"]
    assert [j.name for j in jobs(city_signer=Signer())] == ["contract-timeouts",
                                                            "contract-city-signing"]


def test_review_mail_renders_with_the_link_and_its_expiry_in_jst() -> None:
    link = ReviewLink(link_id="6f1d2b1e-7c43-4f7e-9a55-0c0f3e3a6b21",  # type: ignore[arg-type]
                      to=("boss@demo.co.jp",), expires_at=T0 + timedelta(days=7))
    mail = review_mail(concluded(), link, ContractPolicy(review_base_url="https://hub/r"))
    assert required_values(mail.kind) <= mail.values.keys()
    subject, body, _ = render(mail.kind, mail.values, "電子契約システム")
    assert subject == "電子契約の確認依頼（市道改良工事）"
    assert "https://hub/r/6f1d2b1e-7c43-4f7e-9a55-0c0f3e3a6b21" in body
    assert "2026/04/08 10:00" in body  # 01:00 UTC is 10:00 JST


def test_conclusion_mails_render_one_per_party_with_the_signed_pdf() -> None:
    mails = concluded_mails(concluded())
    assert [m.values["company_name"] for m in mails] == ["デモ建設株式会社", "足利市"]
    for mail in mails:
        assert required_values(mail.kind) <= mail.values.keys()
        subject, _, _ = render(mail.kind, mail.values, "電子契約システム")
        assert subject == "電子契約締結のお知らせ（市道改良工事）"
        assert mail.attachment_ref is not None
        assert mail.attachment_ref.endswith("/R8-001.pdf")
    assert len({m.mail_id for m in mails}) == 2
