"""The ERP's 契約登録 for a concluded case (CON-2: "registered in the ERP").

On conclusion the process asks the ERP connector to register the contract
(:class:`~schemas.erp.ErpRegistrationRequested`, kind ``contract``) with the business key
``contract-<case>``, so a redelivered conclusion is one registration. The 契約番号 is the
case id; the 契約日 is the conclusion date in JST.

工期: the case's own (``ContractCaseOpened.period_start``/``period_end``). Where the city
opened the case without one, the default is the 単年度 contract's span: from the 契約日
to the end of its fiscal year (3月31日; 地方自治法 第208条, 会計年度 April to March).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from pipelines.contract.state import CaseState
from schemas.envelope import JST
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested

__all__ = ["business_key", "contract_registration", "default_period", "why_not_registered"]

_CONTRACT_NO = re.compile(r"^[A-Za-z0-9-]{1,30}$")


def business_key(case_id: str) -> str:
    """The ERP registration's key: one per contract."""
    return f"contract-{case_id}"


def default_period(contract_date: date) -> tuple[date, date]:
    """工期 when the case has none: the 契約日 to the end of its fiscal year (3月31日)."""
    year = contract_date.year + (1 if contract_date.month >= 4 else 0)
    return contract_date, date(year, 3, 31)


def why_not_registered(state: CaseState) -> str | None:
    """Why the case cannot be registered in the ERP (``None``: it can)."""
    if state.contractor_id is None:
        return ("the contractor's 企業ID is unknown: neither the case nor a registration "
                f"of {state.contractor_network}/{state.contractor_user_id} gives it")
    if not _CONTRACT_NO.match(state.case_id):
        return "the case id is not a 契約番号 the ERP takes (A-Z, a-z, 0-9, '-', up to 30)"
    if state.amount_yen < 1:
        return "the contract amount is 0 yen"
    return None


def contract_registration(state: CaseState, concluded_at: datetime
                          ) -> ErpRegistrationRequested | None:
    """The 契約登録 of ``state`` concluded at ``concluded_at``, or ``None`` when
    :func:`why_not_registered` says it cannot be made."""
    if why_not_registered(state) is not None:
        return None
    assert state.contractor_id is not None
    contract_date = concluded_at.astimezone(JST).date()
    start, end = default_period(contract_date)
    if state.period_start is not None:
        start = state.period_start
    elif state.period_end is not None:
        start = min(start, state.period_end)
    end = state.period_end or max(end, start)
    return ErpRegistrationRequested(
        kind=ErpRegistrationKind.CONTRACT, business_key=business_key(state.case_id),
        contract_number=state.case_id, contractor_id=state.contractor_id,
        contractor_name=state.contractor_name[:100], amount_jpy=state.amount_yen,
        subject=state.subject, contract_date=contract_date, period_start=start,
        period_end=end)
