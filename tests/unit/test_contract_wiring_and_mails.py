"""The contract process's wiring (consumer, jobs) and its mails against the mail
connector's own templates (CON-3, CON-4, NTF-2)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.mail.templates import render, required_values
from hub.contract.wiring import city_signer_consumer, consumers, jobs, policy_from_settings
from hub.settings import Settings
from pipelines.contract.handlers import COMMANDS
from pipelines.contract.mails import concluded_mails, review_mail
from pipelines.contract.state import CaseState, ContractPolicy, ReviewLink
from schemas.application import ApplicationReceived, CorrectionRequested
from schemas.cloudsign import ContractConcluded, ContractDeclined, ContractSent
from schemas.contract import (
    CitySignatureApplied,
    ContractParty,
    ContractRoute,
    ContractStatus,
    DocumentRef,
)
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
                           Topics.SURETY_EVENTS, Topics.APPLICATION_EVENTS)
    assert set(spec.handlers) == {*COMMANDS, ContractSent, ContractConcluded, ContractDeclined,
                             ContractSuretyCompleted, ApplicationReceived}
    assert dict(spec.emits)[Topics.APPLICATION_COMMANDS] == (CorrectionRequested,)
    assert all(not spec.is_effect(h) for h in spec.handlers.values())  # transactional
    emitted = dict(spec.emits)
    assert emitted[Topics.ERP_COMMANDS] == (ErpRegistrationRequested,)  # 契約登録 on conclusion


def test_the_city_signs_as_a_consumer_not_a_job() -> None:
    class Signer:
        async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> object:
            raise AssertionError("not called here")

    assert [j.name for j in jobs()] == ["contract-timeouts"]
    spec = city_signer_consumer(sa.create_engine("sqlite://"), Signer())
    assert spec.topics == (Topics.CONTRACT_EVENTS,)
    assert all(spec.is_effect(h) for h in spec.handlers.values())
    assert dict(spec.emits)[Topics.CONTRACT_COMMANDS] == (CitySignatureApplied,)


def test_review_mail_renders_with_the_link_and_its_expiry_in_jst() -> None:
    link = ReviewLink(link_id="6f1d2b1e-7c43-4f7e-9a55-0c0f3e3a6b21",  # type: ignore[arg-type]
                      to=("boss@demo.co.jp",), expires_at=T0 + timedelta(days=7))
    mail = review_mail(concluded(), link, ContractPolicy(review_base_url="https://hub/r"),
                       "Zq3xT0k3n-of-43-characters-drawn-at-random_")
    assert required_values(mail.kind) <= mail.values.keys()
    subject, body, _ = render(mail.kind, mail.values, "電子契約システム")
    assert subject == "電子契約の確認依頼（市道改良工事）"
    assert "https://hub/r/Zq3xT0k3n-of-43-characters-drawn-at-random_" in body
    assert "6f1d2b1e" not in body  # the link's id opens nothing and is not mailed
    assert "令和8年（2026年）4月8日 10:00" in body  # 01:00 UTC is 10:00 JST


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


def test_contract_settings_default_and_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOB_INTERVAL_S", "REVIEW_LINK_TTL_HOURS", "REVIEW_BASE_URL"):
        monkeypatch.delenv(f"HUB_CONTRACT__{name}", raising=False)
    for name in ("HUB_HTTP_HOST", "HUB_HTTP_PORT", "HUB_SETTINGS_FILE"):
        monkeypatch.delenv(name, raising=False)
    default = Settings()
    assert default.contract.job_interval_s == 30
    policy = policy_from_settings(default)
    assert policy.review_link_ttl == timedelta(days=7)
    assert policy.review_base_url == "http://127.0.0.1:8480/contract/review"  # the hub's own
    assert policy_from_settings(Settings(http_host="0.0.0.0", http_port=9000)
                                ).review_base_url == "http://127.0.0.1:9000/contract/review"
    assert policy_from_settings(Settings(http_host="::1")).review_base_url.startswith(
        "http://[::1]:8480/")
    assert policy_from_settings(Settings(public_base_url="https://hub.city.example/")
                                ).review_base_url == "https://hub.city.example/contract/review"
    monkeypatch.setenv("HUB_CONTRACT__JOB_INTERVAL_S", "0.5")
    monkeypatch.setenv("HUB_CONTRACT__REVIEW_LINK_TTL_HOURS", "2")
    monkeypatch.setenv("HUB_CONTRACT__REVIEW_BASE_URL", "https://keiyaku.city.example/review")
    configured = Settings()
    assert configured.contract.job_interval_s == 0.5
    policy = policy_from_settings(configured)
    assert policy.review_link_ttl == timedelta(hours=2)
    assert policy.review_url("a-token") == "https://keiyaku.city.example/review/a-token"
    assert {j.interval_s for j in jobs(interval_s=configured.contract.job_interval_s)} == {0.5}
    monkeypatch.setenv("HUB_CONTRACT__JOB_INTERVAL_S", "0")
    with pytest.raises(ValidationError):
        Settings()
