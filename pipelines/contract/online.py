"""The 電子契約利用申出書 sent through the オンライン申請システム (CON-1, CON-2).

The application connector publishes each submission as ``ApplicationReceived`` on
``proc.application.events``. For a 電子契約利用申出書 the contract process reads it as
its own :class:`~schemas.contract.ElectronicContractApplication` (契約締結権限者, up to
three 契約担当者, 工事名 and 場所) and decides it like one sent by the city's staff.
What the contractor must correct (CON-1: a missing or unreadable 契約締結権限者, a
契約担当者 too many, a change after the review started) goes back the way it came: a
``CorrectionRequested`` (補正依頼) that the connector sends into the online system
(seed 002: corrections are exchanged inside the online application system).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from schemas.application import ApplicationReceived, CorrectionRequested, FormKind
from schemas.contract import ContractParty, ElectronicContractApplication
from schemas.rejection import RuleViolation

__all__ = ["CORRECTION_NAMESPACE", "application_of", "correction_for"]

CORRECTION_NAMESPACE = uuid.UUID("5b0f3f7e-6a2c-4d51-9a43-c7d1e0b8f214")
"""Correction ids: one per application, however often the answer is redelivered."""


def application_of(received: ApplicationReceived) -> ElectronicContractApplication | None:
    """The 申出書 as the contract process reads it; ``None`` when it is another form or
    the connector could not read it (its CON-1 ``problems`` say why)."""
    if received.form is not FormKind.E_CONTRACT_APPLICATION or received.e_contract is None:
        return None
    form = received.e_contract
    return ElectronicContractApplication(
        case_id=received.case_id, work_name=form.work_name, work_place=form.work_site,
        authorized=ContractParty(name=form.signatory.name, email=form.signatory.email),
        officers=tuple(ContractParty(name=o.name, email=o.email) for o in form.officers),
        applied_at=received.submitted_at)


def correction_for(received: ApplicationReceived,
                   violations: Iterable[RuleViolation]) -> CorrectionRequested | None:
    """The 補正依頼 for what the contractor can correct in the 申出書 (CON-1), if any."""
    found = tuple(v for v in violations if v.rule_id == "CON-1")
    if not found:
        return None
    return CorrectionRequested(
        correction_id=uuid.uuid5(CORRECTION_NAMESPACE, received.application_id),
        application_id=received.application_id, violations=found,
        comment_ja="電子契約利用申出書の内容を確認し、修正して再提出してください。")
