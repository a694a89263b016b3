"""The surety rules (電子保証, SUR-1 … SUR-6) as pure functions over (state, input, today).

- SUR-1: an application's key notices (保証契約番号 + 認証キー) become D・Sure checks; an
  application that should carry one but does not gets a correction request.
- SUR-2: a fetched certificate is compared field by field with the case facts (発注者,
  工事名, 受注者 and JV名 both ways, amounts, dates, depository); every differing field is
  one violation naming the field, expected vs found.
- SUR-3: one guarantee contract (保証契約番号) keeps the form of its first certificate,
  remembered from the first one seen whether it was accepted or not.
- SUR-4: the form is judged per guarantee contract, so each product of a work may differ.
- SUR-5: a paper guarantee is a tracked manual task due on the contract date, not an error.
- SUR-6: the first acceptance of a guarantee completes its step: 前払金保証 → an ERP
  advance-payment registration; 契約保証 → ContractSuretyCompleted for the contract process.

Nothing here touches the database or Kafka: the handlers load the state, call these,
save what the :class:`Decision` says and emit its messages.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

from pipelines.surety import texts
from schemas.application import ApplicationReceived, CorrectionRequested, FormKind
from schemas.case import CaseFacts
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.mail import MailKind, MailRequested
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.surety import (
    CertificateForm,
    ContractSuretyCompleted,
    PaperGuaranteeRecorded,
    PaperGuaranteeTaskClosed,
    PaperGuaranteeTaskOpened,
    SuretyAccepted,
    SuretyCertificate,
    SuretyCheckRequested,
    SuretyKeySource,
    SuretyLookupRefused,
    SuretyProduct,
    SuretyRejected,
)
from schemas.text import name_key, trade_name_key
from schemas.topics import Topics, TopicSpec

__all__ = [
    "CaseState",
    "Decision",
    "Guarantee",
    "PaperTask",
    "compare",
    "decide_application",
    "decide_case",
    "decide_certificate",
    "decide_paper",
    "decide_refusal",
    "erp_business_key",
    "form_violation",
    "result_mail",
    "task_id",
]

_FORM_TEXT = {CertificateForm.ELECTRONIC: ("電子証書", "electronic"),
              CertificateForm.PAPER: ("紙の保証証書", "paper")}


@dataclass(frozen=True)
class CaseState:
    """The case as the city holds it, with every 請負金額 it has had (seed 002, 注2)."""

    facts: CaseFacts
    entity: str
    earlier_amounts: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Guarantee:
    """One guarantee contract (保証契約): its first form (SUR-3) and whether SUR-6 is done."""

    number: str
    case_id: str
    product: SuretyProduct
    form: CertificateForm
    completed: bool = False


@dataclass(frozen=True)
class PaperTask:
    """The manual task of a paper original (SUR-5)."""

    task_id: str
    case_id: str
    product: SuretyProduct
    due_date: date
    status: str = "open"
    """open | received | superseded (an electronic certificate came instead, SUR-4)."""


@dataclass(frozen=True)
class Decision:
    """What to emit and which state to save."""

    emits: tuple[tuple[TopicSpec, Payload], ...] = ()
    guarantee: Guarantee | None = None
    tasks: tuple[PaperTask, ...] = ()
    wait: bool = False
    """The case facts are not known yet: keep the certificate and decide when they come."""


def task_id(case_id: str, product: SuretyProduct) -> str:
    return f"{case_id}:{product.value}:paper"


def erp_business_key(entity: str, contract_number: str, suffix: str) -> str:
    """The ERP registration's key: readable, or a digest when it would be too long."""
    key = f"{entity}:{contract_number}:{suffix}"
    if len(key) <= 80:
        return key
    return f"{contract_number}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _same_name(a: str, b: str) -> bool:
    return trade_name_key(a) == trade_name_key(b)


def compare(case: CaseState, cert: SuretyCertificate) -> tuple[RuleViolation, ...]:
    """SUR-2: every field of ``cert`` that differs from the case, in the certificate's order."""
    facts = case.facts
    expected = facts.expected(cert.product)
    if expected is None:
        wanted = tuple(s.product for s in facts.sureties)
        return (texts.mismatch("product", wanted[0] if len(wanted) == 1 else None, cert.product),)
    found: list[RuleViolation] = []
    checks: list[tuple[str, object, object, Callable[[], bool]]] = [
        ("procuring_entity_name", facts.procuring_entity_name, cert.procuring_entity_name,
         lambda: name_key(facts.procuring_entity_name) == name_key(cert.procuring_entity_name)),
        ("work_name", facts.work_name, cert.work_name,
         lambda: name_key(facts.work_name) == name_key(cert.work_name)),
        ("contractor_name", facts.contractor_name, cert.contractor_name,
         lambda: _same_name(facts.contractor_name, cert.contractor_name)),
        # Both ways: a JV's guarantee does not cover the company alone, nor the reverse.
        ("jv_name", facts.jv_name, cert.jv_name,
         lambda: (facts.jv_name is None and cert.jv_name is None)
         or (facts.jv_name is not None and cert.jv_name is not None
             and _same_name(facts.jv_name, cert.jv_name))),
        ("contract_amount", facts.contract_amount, cert.contract_amount,
         lambda: cert.contract_amount in case.earlier_amounts | {facts.contract_amount}),
        ("guarantee_amount", expected.guarantee_amount, cert.guarantee_amount,
         lambda: expected.guarantee_amount == cert.guarantee_amount),
        ("work_period", (facts.work_period_start, facts.work_period_end),
         (cert.work_period_start, cert.work_period_end),
         lambda: (facts.work_period_start, facts.work_period_end)
         == (cert.work_period_start, cert.work_period_end)),
        ("contract_date", facts.contract_date, cert.contract_date,
         lambda: facts.contract_date == cert.contract_date),
        ("depository", expected.depository, cert.depository,
         lambda: expected.depository is None or (
             cert.depository is not None
             and name_key(expected.depository) == name_key(cert.depository))),
    ]
    for field, want, got, same in checks:
        if not same():
            found.append(texts.mismatch(field, want, got))
    if cert.guarantee_deadline < expected.guarantee_deadline:
        found.append(texts.mismatch("guarantee_deadline", expected.guarantee_deadline,
                                    cert.guarantee_deadline, at_least=True))
    return tuple(found)


def form_violation(prior: Guarantee | None, number: str,
                   form: CertificateForm) -> RuleViolation | None:
    """SUR-3: a guarantee contract keeps its first form, new or change certificate alike."""
    if prior is None or prior.form is form:
        return None
    first_ja, first_en = _FORM_TEXT[prior.form]
    now_ja, now_en = _FORM_TEXT[form]
    return texts.form_mixed(number, first_ja, first_en, now_ja, now_en)


def _completion(case: CaseState, number: str, product: SuretyProduct, form: CertificateForm,
                today: date) -> tuple[TopicSpec, Payload] | None:
    """SUR-6: what an accepted guarantee completes."""
    facts = case.facts
    expected = facts.expected(product)
    if expected is None:
        return None
    if product is SuretyProduct.ADVANCE_PAYMENT:
        return Topics.ERP_COMMANDS, ErpRegistrationRequested(
            kind=ErpRegistrationKind.ADVANCE_PAYMENT,
            business_key=erp_business_key(case.entity, facts.contract_number,
                                          f"advance-payment:{number}"),
            contract_number=facts.contract_number, contractor_id=facts.contractor_id,
            contractor_name=facts.contractor_name[:100], amount_jpy=expected.guarantee_amount,
            request_date=today, surety_number=number)
    return Topics.SURETY_EVENTS, ContractSuretyCompleted(
        case_id=facts.case_id, guarantee_number=number, form=form,
        guarantee_amount=expected.guarantee_amount)


def _supersede(tasks: tuple[PaperTask, ...], product: SuretyProduct,
               number: str, today: date) -> tuple[tuple[PaperTask, ...], list[Payload]]:
    """An electronic certificate for a product awaiting paper ends that task (SUR-4, SUR-5)."""
    done: list[PaperTask] = []
    events: list[Payload] = []
    for task in tasks:
        if task.product is product and task.status == "open":
            done.append(replace(task, status="superseded"))
            events.append(PaperGuaranteeTaskClosed(
                task_id=task.task_id, case_id=task.case_id, product=product,
                guarantee_number=number, received_on=today))
    return tuple(done), events


def result_mail(case: CaseState | None, number: str, entity_name: str,
                violations: tuple[RuleViolation, ...],
                key: str) -> tuple[TopicSpec, Payload] | None:
    """The 電子保証の確認結果 notice to the contractor, when the case names an address.

    ``key`` makes the mail id: one notice per decided certificate, however often redelivered.
    """
    if case is None or case.facts.notice_email is None:
        return None
    facts, address = case.facts, case.facts.notice_email
    if violations:
        result = "受理できません（内容をご確認ください）"
        detail = " / ".join(f"[{v.rule_id}] {v.message_ja} {v.next_step_ja}".strip()
                            for v in violations)[:2000]
    else:
        result, detail = "受理しました", "保証契約番号と認証キーにより確認が完了しました。"
    return Topics.MAIL_REQUESTS, MailRequested(
        mail_id=uuid.uuid5(uuid.NAMESPACE_URL, f"surety-result:{facts.case_id}:{number}:{key}"),
        kind=MailKind.SURETY_RESULT, to=(address,),
        values={"case_name": facts.work_name[:200], "company_name": facts.contractor_name[:200],
                "procuring_entity_name": entity_name[:100], "surety_number": number,
                "result": result, "detail": detail})


def decide_certificate(case: CaseState | None, prior: Guarantee | None,
                       tasks: tuple[PaperTask, ...], cert: SuretyCertificate, *,
                       case_id: str, today: date) -> Decision:
    """SUR-2, SUR-3, SUR-4, SUR-6 for one certificate fetched from D・Sure."""
    if case is None:
        return Decision(wait=True)
    violations = list(compare(case, cert))
    mixed = form_violation(prior, cert.contract_number, cert.form)
    if mixed is not None:
        violations.insert(0, mixed)
    mail = result_mail(case, cert.contract_number, cert.procuring_entity_name,
                       tuple(violations), cert.issued_at.isoformat())
    first = prior or Guarantee(cert.contract_number, case_id, cert.product, cert.form)
    if violations:
        # The form it was issued in binds the guarantee even when this certificate is
        # refused (SUR-3): a later paper certificate for it must not be accepted.
        return Decision(emits=((Topics.SURETY_EVENTS, SuretyRejected(
            case_id=case_id, contract_number=cert.contract_number, product=cert.product,
            violations=tuple(violations))), *((mail,) if mail else ())),
            guarantee=first if prior is None else None)
    emits: list[tuple[TopicSpec, Payload]] = [(Topics.SURETY_EVENTS, SuretyAccepted(
        case_id=case_id, contract_number=cert.contract_number, product=cert.product,
        issue_kind=cert.issue_kind, form=cert.form))]
    if mail is not None:
        emits.append(mail)
    guarantee = first
    if not guarantee.completed:
        done = _completion(case, cert.contract_number, cert.product, cert.form, today)
        if done is not None:
            emits.append(done)
        guarantee = replace(guarantee, completed=True)
    closed, events = _supersede(tasks, cert.product, cert.contract_number, today)
    emits += [(Topics.SURETY_EVENTS, e) for e in events]
    return Decision(emits=tuple(emits), guarantee=guarantee, tasks=closed)


def decide_refusal(refused: SuretyLookupRefused, case_id: str,
                   case: CaseState | None = None, key: str = "") -> Decision:
    """D・Sure refused the number and key: the same answer, as the case's rejection."""
    mail = result_mail(case, refused.contract_number, case.entity if case else "",
                       refused.violations, f"refused:{key}")
    return Decision(emits=((Topics.SURETY_EVENTS, SuretyRejected(
        case_id=case_id, contract_number=refused.contract_number,
        violations=refused.violations)), *((mail,) if mail else ())))


def decide_case(case: CaseState, tasks: tuple[PaperTask, ...]) -> Decision:
    """SUR-5: each product the contract wants on paper gets a task due on the contract date."""
    facts = case.facts
    by_product = {t.product: t for t in tasks}
    changed: list[PaperTask] = []
    for surety in facts.sureties:
        if surety.form is not CertificateForm.PAPER:
            continue
        task = by_product.get(surety.product)
        if task is None:
            changed.append(PaperTask(task_id(facts.case_id, surety.product), facts.case_id,
                                     surety.product, facts.contract_date))
        elif task.status == "open" and task.due_date != facts.contract_date:
            changed.append(replace(task, due_date=facts.contract_date))
    return Decision(emits=tuple((Topics.SURETY_EVENTS, PaperGuaranteeTaskOpened(
        task_id=t.task_id, case_id=t.case_id, product=t.product, due_date=t.due_date))
        for t in changed), tasks=tuple(changed))


def decide_paper(case: CaseState, prior: Guarantee | None, tasks: tuple[PaperTask, ...],
                 cmd: PaperGuaranteeRecorded, today: date) -> Decision:
    """SUR-5 (the original arrived), SUR-3 (never onto an electronic guarantee), SUR-6."""
    mixed = form_violation(prior, cmd.guarantee_number, CertificateForm.PAPER)
    if mixed is not None:
        return Decision(emits=((Topics.SURETY_EVENTS, SuretyRejected(
            case_id=cmd.case_id, contract_number=cmd.guarantee_number, product=cmd.product,
            violations=(mixed,))),))
    emits: list[tuple[TopicSpec, Payload]] = []
    closed: list[PaperTask] = []
    for task in tasks:
        if task.product is cmd.product and task.status == "open":
            closed.append(replace(task, status="received"))
            emits.append((Topics.SURETY_EVENTS, PaperGuaranteeTaskClosed(
                task_id=task.task_id, case_id=task.case_id, product=task.product,
                guarantee_number=cmd.guarantee_number, received_on=cmd.received_on,
                late=cmd.received_on > task.due_date)))
    guarantee = prior or Guarantee(cmd.guarantee_number, cmd.case_id, cmd.product,
                                   CertificateForm.PAPER)
    if not guarantee.completed:
        done = _completion(case, cmd.guarantee_number, cmd.product, CertificateForm.PAPER, today)
        if done is not None:
            emits.append(done)
        guarantee = replace(guarantee, completed=True)
    return Decision(emits=tuple(emits), guarantee=guarantee, tasks=tuple(closed))


def decide_application(received: ApplicationReceived) -> Decision:
    """SUR-1: one D・Sure check per readable key notice; a correction when none is readable."""
    checks = tuple((Topics.SURETY_COMMANDS, SuretyCheckRequested(
        contract_number=n.contract_number, auth_key=n.auth_key,
        source=SuretyKeySource.APPLICATION, expected_product=n.product,
        application_id=received.application_id)) for n in received.surety_notices)
    problems = tuple(p for p in received.problems if p.rule_id == "SUR-1")
    if not problems and not checks and received.form is FormKind.SURETY_KEY_NOTICE:
        problems = (texts.no_notice(received.application_id),)
    if not problems:
        return Decision(emits=checks)
    correction = CorrectionRequested(
        correction_id=uuid.uuid5(uuid.NAMESPACE_URL, f"surety:{received.application_id}"),
        application_id=received.application_id, violations=problems,
        comment_ja="電子保証の認証キーのお知らせを確認できませんでした。")
    return Decision(emits=(*checks, (Topics.APPLICATION_COMMANDS, correction)))
