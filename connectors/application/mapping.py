"""The application system's format ↔ canonical messages (CON-1, SUR-1). Pure: no I/O.

The application system names a procedure by its Japanese title (seed 002: 電子契約
利用申出書, 前金払申請書及び前払金請求書, ...) and sends the form's answers under
their Japanese labels. This module maps them to :class:`ApplicationReceived`,
reads the 電子契約利用申出書 into :class:`EContractApplication` (CON-1: the
契約締結権限者 is required, at most three 契約担当者), and turns a correction into
the system's format. A submission is always delivered: what is wrong with it
goes into ``problems`` with its rule, so the city can send a correction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.application import (
    ApplicationReceived,
    AttachmentRef,
    ContractOfficer,
    CorrectionRequested,
    EContractApplication,
    FormKind,
    SuretyKeyNotice,
    WorkDomain,
)
from schemas.ids import keyed_uuid
from schemas.rejection import RuleViolation
from schemas.surety import SuretyCheckRequested, SuretyKeySource

__all__ = [
    "PeerFormatError",
    "application_from_peer",
    "attachment_path",
    "correction_to_peer",
    "e_contract_from_answers",
    "form_from_label",
    "message_id_for",
    "surety_checks",
]

_DOMAINS = {"建設工事": WorkDomain.CONSTRUCTION,
            "建設工事関連業務": WorkDomain.CONSTRUCTION_SERVICES}
_FORMS = {kind.label_ja: kind for kind in FormKind}
# Titles the system also uses for the same procedure.
_FORMS |= {"電子保証に係る認証キーのお知らせ": FormKind.SURETY_KEY_NOTICE,
           "電子保証にかかる「認証キー」のお知らせ": FormKind.SURETY_KEY_NOTICE,
           "現場代理人等選任通知書": FormKind.SITE_AGENT_APPOINTMENT,
           "前払金請求書": FormKind.ADVANCE_PAYMENT_REQUEST}


class PeerFormatError(ValueError):
    """The application system sent something that is not an application we know."""


def message_id_for(application_id: str) -> uuid.UUID:
    """One message id per application, so webhook and polling deliver it once (dedupe):
    keyed with HUB_ID_KEY, so nobody without the key can take it in advance (DAT-5)."""
    return keyed_uuid("application", application_id)


def form_from_label(label: str) -> FormKind:
    try:
        return _FORMS[label.strip()]
    except KeyError:
        raise PeerFormatError(f"unknown procedure {label!r}") from None


def attachment_path(application_id: str, attachment_id: str) -> str:
    return f"/api/v1/applications/{application_id}/attachments/{attachment_id}"


def _officer(answers: dict[str, str], prefix: str) -> ContractOfficer | None:
    name = answers.get(f"{prefix}氏名", "").strip()
    email = answers.get(f"{prefix}メールアドレス", "").strip()
    if not name and not email:
        return None
    return ContractOfficer(name=name, email=email)


def _con1(message_ja: str, message_en: str, field: str) -> RuleViolation:
    return RuleViolation(
        rule_id="CON-1", message_ja=message_ja, message_en=message_en, field=field,
        next_step_ja="電子契約利用申出書を修正して再提出してください。",
        next_step_en="Correct the 電子契約利用申出書 and submit it again.",
    )


def e_contract_from_answers(answers: dict[str, str]
                            ) -> tuple[EContractApplication | None, tuple[RuleViolation, ...]]:
    """The 電子契約利用申出書's answers → the canonical form, or the CON-1 problems."""
    try:
        signatory = _officer(answers, "契約締結権限者")
    except ValidationError:
        return None, (_con1("契約締結権限者の氏名またはメールアドレスが正しくありません。",
                            "The 契約締結権限者's name or e-mail address is invalid.",
                            "契約締結権限者"),)
    if signatory is None:
        return None, (_con1("契約締結権限者（必須）が記入されていません。",
                            "The 契約締結権限者 (required) is missing.", "契約締結権限者"),)
    officers: list[ContractOfficer] = []
    for n in (1, 2, 3):
        try:
            officer = _officer(answers, f"契約担当者{n}")
        except ValidationError:
            return None, (_con1(f"契約担当者{n}の氏名またはメールアドレスが正しくありません。",
                                f"契約担当者{n}'s name or e-mail address is invalid.",
                                f"契約担当者{n}"),)
        if officer is not None:
            officers.append(officer)
    work_name = answers.get("工事名", "").strip()
    if not work_name:
        return None, (_con1("工事名が記入されていません。", "The work name (工事名) is missing.",
                            "工事名"),)
    form = EContractApplication(work_name=work_name, work_site=answers.get("工事場所", "").strip(),
                                signatory=signatory, officers=tuple(officers))
    return form, ()


def _str_dict(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PeerFormatError(f"{what} is not an object of strings")
    return value


def _attachment(app_id: str, form: FormKind, raw: Any) -> AttachmentRef:
    if not isinstance(raw, dict):
        raise PeerFormatError("attachment is not an object")
    kind = raw.get("kind")
    return AttachmentRef(
        attachment_id=str(raw.get("id")),
        form=form_from_label(kind) if isinstance(kind, str) and kind else form,
        filename=str(raw.get("filename")),
        media_type=str(raw.get("content_type")),
        size_bytes=int(raw["size"]),
        sha256=str(raw.get("sha256")),
        url=attachment_path(app_id, str(raw.get("id"))),
    )


def application_from_peer(raw: Any, *, notices: tuple[SuretyKeyNotice, ...] = (),
                          problems: tuple[RuleViolation, ...] = ()) -> ApplicationReceived:
    """One application record → :class:`ApplicationReceived` (notices read by the caller)."""
    if not isinstance(raw, dict):
        raise PeerFormatError("application is not an object")
    try:
        app_id = str(raw["id"])
        form = form_from_label(str(raw["procedure"]))
        domain = _DOMAINS[str(raw["category"])]
        applicant = raw["applicant"]
        answers = _str_dict(raw.get("answers", {}), "answers")
        attachments = tuple(_attachment(app_id, form, a) for a in raw.get("attachments", []))
        submitted_at = datetime.fromisoformat(str(raw["submitted_at"]))
        e_contract: EContractApplication | None = None
        e_problems: tuple[RuleViolation, ...] = ()
        if form is FormKind.E_CONTRACT_APPLICATION:
            e_contract, e_problems = e_contract_from_answers(answers)
        return ApplicationReceived(
            application_id=app_id, case_id=str(raw["case_no"]), form=form, domain=domain,
            company_name=str(applicant["company"]),
            representative=str(applicant.get("representative", "")),
            submitted_at=submitted_at, fields=answers, attachments=attachments,
            e_contract=e_contract, surety_notices=notices, problems=problems + e_problems,
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        if isinstance(exc, PeerFormatError):
            raise
        raise PeerFormatError(f"application record unreadable: {type(exc).__name__}") from None


def correction_to_peer(command: CorrectionRequested) -> dict[str, Any]:
    """A correction (補正依頼) in the application system's format."""
    return {
        "correction_id": str(command.correction_id),
        "comment": command.comment_ja,
        "items": [
            {"rule": v.rule_id, "field": v.field or "", "message": v.message_ja,
             "next_step": v.next_step_ja}
            for v in command.violations
        ],
    }


def surety_checks(received: ApplicationReceived) -> tuple[SuretyCheckRequested, ...]:
    """The D・Sure lookups an application asks for: one per readable key notice (SUR-1)."""
    return tuple(
        SuretyCheckRequested(contract_number=n.contract_number, auth_key=n.auth_key,
                             source=SuretyKeySource.APPLICATION, expected_product=n.product,
                             application_id=received.application_id)
        for n in received.surety_notices
    )
