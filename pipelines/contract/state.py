"""The state of one contract case (案件) in the conclusion process, and the city's policy.

:class:`CaseState` is everything the pure rules (:mod:`.rules`) look at; the store keeps
it as one JSON document per case beside the columns the archive searches (CON-6, CON-7).
:class:`ContractPolicy` holds what a city decides: how long a review link lives (CON-3)
and where the review page is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.contract import ContractParty, ContractRoute, ContractStatus, DocumentRef

__all__ = ["PARTIES", "CaseState", "ContractPolicy", "ReviewLink"]

PARTIES = 2
"""Who must agree: the contractor and the city (CON-6's m in "agreed n/m")."""


class ReviewLink(BaseModel):
    """The one live review link of a case (CON-3); a new one supersedes it. ``link_id``
    names it in events and commands and opens nothing: the page is reached by the link's
    secret token, of which only the hash is kept (:mod:`.links`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    link_id: uuid.UUID
    to: tuple[str, ...]
    expires_at: AwareDatetime
    expired: bool = False
    number: int = 1
    """How many links the case has had, this one included (names the next one)."""

    def usable_at(self, when: datetime) -> bool:
        return not self.expired and when < self.expires_at


class CaseState(BaseModel):
    """One case from 開札 to 締結完了 (CON-2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    procuring_entity: str
    subject: str
    amount_yen: int
    contractor_network: str
    contractor_user_id: str
    contractor_name: str
    city_name: str
    city_officer: ContractParty
    route: ContractRoute
    status: ContractStatus
    surety_required: bool = False
    surety_number: str | None = None
    """保証契約番号 of the accepted 契約保証 (SUR-6), once the surety pipeline says so."""
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    contractor_id: str | None = None
    """企業ID for the ERP (CaseOpened's, else the contractor's registration)."""
    period_start: date | None = None
    period_end: date | None = None
    """工期 as the case was opened with it (for the ERP's 契約登録)."""
    authorized: ContractParty | None = None
    officers: tuple[ContractParty, ...] = ()
    title: str | None = None
    document: DocumentRef | None = None
    link: ReviewLink | None = None
    contractor_agreed_at: AwareDatetime | None = None
    contractor_agreed_by: str | None = None
    signing_job_id: str | None = None
    contractor_signed: DocumentRef | None = None
    contractor_signer: str | None = None
    contractor_signed_at: AwareDatetime | None = None
    city_agreed_at: AwareDatetime | None = None
    city_signer: str | None = None
    city_signed_at: AwareDatetime | None = None
    signed: DocumentRef | None = None
    concluded_at: AwareDatetime | None = None
    cloudsign_request_id: uuid.UUID | None = None
    cloudsign_document_id: str | None = None
    rejection_reason: str | None = None

    @property
    def declared_addresses(self) -> tuple[str, ...]:
        """The contractor's addresses of the current 申出書 (CON-1), 権限者 first."""
        people = ((self.authorized,) if self.authorized else ()) + self.officers
        return tuple(p.email.lower() for p in people)

    @property
    def agreed(self) -> int:
        """Parties that agreed so far (CON-6)."""
        if self.status is ContractStatus.CONCLUDED:
            return PARTIES
        return (self.contractor_agreed_at is not None) + (self.city_agreed_at is not None)


@dataclass(frozen=True)
class ContractPolicy:
    """What the city decides (defaults: the seed's CloudSign-like 7-day review links).

    The hub builds it from its settings (``HUB_CONTRACT__*``, hub/contract/wiring.py).
    """

    review_link_ttl: timedelta = timedelta(days=7)
    review_base_url: str = "http://127.0.0.1:8480/contract/review"
    system_name: str = "電子契約システム"

    def review_url(self, token: str) -> str:
        """The review page of the link whose secret token is ``token`` (CON-3)."""
        return f"{self.review_base_url.rstrip('/')}/{token}"
