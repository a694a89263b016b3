"""利用者登録・変更・ICカード更新: the registration commands and events (REG, CHG, RNW).

A card is identified by issuer DN + serial number (REG-1). Commands carry the facts the
gateway read from the card the person authenticated with (issuer, serial, holder, holder
address, validity, when it was authenticated): never a PIN (PIN-1) and never a password
(the gateway checks the password and says only whether it matched, REG-3).

Pure format rules of REG-7 (lengths, half-width fields, postal code and phone shapes) are
enforced here; rules that need state or policy (ID scheme per entity, e-mail typed twice,
first registration) live in :mod:`pipelines.registration`.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas import fast
from schemas.envelope import EntityCode
from schemas.mail import MailAddress
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation

__all__ = [
    "CardFacts",
    "CardRef",
    "CardRegistered",
    "CardRegistrationRequested",
    "CardRenewalRequested",
    "CardRenewed",
    "CardRevoked",
    "CompanyId",
    "Contact",
    "ContactChangeRequested",
    "ContactChanged",
    "ContactInput",
    "Domain",
    "HeldRegistrationRejected",
    "PropagationKind",
    "PropagationScheduled",
    "RegistrationConfirmed",
    "RegistrationNeedsConfirmation",
    "RegistrationRejected",
    "RevocationReason",
    "SystemKind",
    "input_violations",
]

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"

UserIdText = Annotated[
    str,
    Field(min_length=1, max_length=20, pattern=_NO_CONTROL,
          description="ユーザID or 業者番号 as typed; the entity's scheme is checked by the rules "
          "so that a full-width character gets a REG-3 hint instead of a bare schema error."),
]
CompanyId = Annotated[str, Field(pattern=r"^[0-9]{16}$", description="企業ID, 16 digits.")]
PostalCode = Annotated[str, Field(pattern=r"^[0-9]{3}-[0-9]{4}$", description="NNN-NNNN (REG-7).")]
Phone = Annotated[
    str,
    Field(pattern=r"^0[0-9]{1,4}-[0-9]{1,4}-[0-9]{3,5}$",
          description="Half-width, 0N-NNNN-NNNN style (REG-7)."),
]
Text20 = Annotated[str, Field(min_length=1, max_length=20, pattern=_NO_CONTROL)]
Text30 = Annotated[str, Field(min_length=1, max_length=30, pattern=_NO_CONTROL)]
Text40 = Annotated[str, Field(min_length=1, max_length=40, pattern=_NO_CONTROL)]
Text60 = Annotated[str, Field(min_length=1, max_length=60, pattern=_NO_CONTROL)]
Text200 = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL)]


class Domain(enum.StrEnum):
    """The two separate procurement domains; a company registers in each separately (CHG-2)."""

    WORKS = "works"
    """工事 (works, incl. consulting: 工事・コンサル)."""
    GOODS = "goods"
    """物品 (goods and services: 物品・役務)."""

    @property
    def label_ja(self) -> str:
        return "工事" if self is Domain.WORKS else "物品"


class SystemKind(enum.StrEnum):
    """Which kind of system an entity runs; the REG-11 and WIN policies differ."""

    E_BID = "e-bid"
    """電子入札システム."""
    E_CONTRACT = "e-contract"
    """電子契約システム."""

    @property
    def label_ja(self) -> str:
        return "電子入札システム" if self is SystemKind.E_BID else "電子契約システム"


class PropagationKind(enum.StrEnum):
    """What reaches the other entities by the nightly batch (REG-9, CHG-3, RNW-8)."""

    REGISTRATION = "registration"
    """利用者登録 (REG-9)."""
    CHANGE = "change"
    """利用者変更 (CHG-3)."""
    RENEWAL = "renewal"
    """ICカード更新 (RNW-8)."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class CardRef(_Strict):
    """A card's identity: issuer DN + serial number (REG-1)."""

    issuer: Text200 = Field(description="Issuer DN, e.g. OU=CoreCA,O=eJapan2 Tech Center,C=JP.")
    serial: Annotated[str, Field(pattern=r"^[0-9]{1,49}$", description="Serial, decimal.")]

    @property
    def key(self) -> tuple[str, str]:
        return (self.issuer, self.serial)


class CardFacts(CardRef):
    """What the gateway read from a card the person authenticated with (never the PIN)."""

    holder_name: Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_CONTROL)]
    holder_address: Text200
    holder_organization: Text200 | None = None
    not_before: AwareDatetime
    not_after: AwareDatetime
    authenticated_at: AwareDatetime | None = Field(
        default=None, description="When the PIN was accepted on this card (PIN-2, RNW-6).")

    @model_validator(mode="after")
    def _validity_in_order(self) -> Self:
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        return self

    @property
    def ref(self) -> CardRef:
        # Both fields are this object's own, validated by the same constraints.
        return fast.build(CardRef, issuer=self.issuer, serial=self.serial)


class Contact(_Strict):
    """連絡先 (代表窓口 or ICカード利用部署) as stored and mailed (REG-7 limits)."""

    contact_name: Text60 = Field(description="連絡先名称 (部署名等), ≤60.")
    postal_code: PostalCode
    address: Text60 = Field(description="連絡先住所, ≤60.")
    person_name: Text20 = Field(description="連絡先氏名, ≤20.")
    phone: Phone
    fax: Phone | None = None
    email: MailAddress


class ContactInput(Contact):
    """連絡先 as typed: the e-mail address is typed twice (REG-7)."""

    email_confirmation: Annotated[str, Field(max_length=100)]

    def to_contact(self) -> Contact:
        # Every field is one of this object's own, validated by the same constraints.
        return fast.build(
            Contact, contact_name=self.contact_name, postal_code=self.postal_code,
            address=self.address, person_name=self.person_name, phone=self.phone, fax=self.fax,
            email=self.email)


class _EntityCommand(Payload):
    procuring_entity: EntityCode
    system: SystemKind
    domain: Domain
    user_id: UserIdText


@message("registration.card-registration-requested", 1)
class CardRegistrationRequested(_EntityCommand):
    """利用者登録: register an authenticated card for a user ID at one entity (REG-1..REG-11)."""

    trade_name: Text40 = Field(description="商号又は名称 as typed (REG-3).")
    password_verified: bool = Field(
        description="The gateway checked the password; the password itself never travels.")
    card: CardFacts
    department_name: Text30 | None = Field(
        default=None, description="部署名; the company name if none.")
    representative_contact: ContactInput | None = Field(
        default=None, description="代表窓口情報: first registration of a user ID only (REG-7/8).")
    card_department_contact: ContactInput = Field(
        description="ICカード利用部署情報 (REG-7, NTF-1).")
    apply_now_to: tuple[EntityCode, ...] = Field(
        default=(), max_length=50, description="Entities to apply at once, not next day (REG-9).")


@message("registration.registration-confirmed", 1)
class RegistrationConfirmed(_EntityCommand):
    """The person confirms a registration the hub held back as a likely mistake (REG-11),
    or the city's staff confirms it after checking with the company (``confirmed_by``)."""

    confirmation_id: uuid.UUID
    card: CardFacts
    confirmed_by: str | None = Field(
        default=None, min_length=1, max_length=254,
        description="The city's 管理者 who confirmed it after checking with the company; "
        "none: the applicant, with the card freshly authenticated again.")


@message("registration.held-registration-rejected", 1)
class HeldRegistrationRejected(_EntityCommand):
    """The city's staff closes a registration held back for confirmation (REG-11) as
    rejected; the applicant is answered as for any rejection."""

    confirmation_id: uuid.UUID
    rejected_by: str = Field(min_length=1, max_length=254,
                             description="The city's 管理者 who rejected it.")


@message("registration.contact-change-requested", 1)
class ContactChangeRequested(_EntityCommand):
    """利用者変更: change the contacts of one registered card in one domain (CHG-1, CHG-2)."""

    card: CardFacts
    department_name: Text30 | None = None
    representative_contact: ContactInput | None = None
    card_department_contact: ContactInput | None = None
    apply_to_other_entities: bool = Field(default=False, description="CHG-3, next day.")
    apply_now_to: tuple[EntityCode, ...] = Field(default=(), max_length=50)

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if (self.representative_contact is None and self.card_department_contact is None
                and self.department_name is None):
            raise ValueError("nothing to change: give a contact or a department name")
        return self


@message("registration.card-renewal-requested", 1)
class CardRenewalRequested(_EntityCommand):
    """ICカード更新: move a user ID from its valid old card to a new one (RNW-1..RNW-9).

    Both cards were authenticated with their PINs, old first (RNW-6). Nothing is typed:
    contacts are inherited (RNW-7).
    """

    old_card: CardFacts
    new_card: CardFacts
    apply_to_other_entities: bool = Field(default=False, description="RNW-8, next day.")
    apply_now_to: tuple[EntityCode, ...] = Field(default=(), max_length=50)


class _EntityEvent(Payload):
    procuring_entity: EntityCode
    network: str = Field(min_length=1, max_length=64, description="Shared system of user IDs.")
    domain: Domain
    user_id: UserIdText
    propagated_from: EntityCode | None = Field(
        default=None, description="Set when applied by propagation from another entity (REG-9).")


@message("registration.card-registered", 1)
class CardRegistered(_EntityEvent):
    """A card is registered for a user ID at one entity and domain (REG-10)."""

    system: SystemKind
    company_id: CompanyId
    company_name: str = Field(min_length=1, max_length=200)
    first_registration: bool
    card: CardFacts
    department_name: str = Field(min_length=1, max_length=200)
    card_department_contact: Contact
    representative_contact: Contact | None = None
    warnings: tuple[RuleViolation, ...] = Field(
        default=(), description="E.g. little validity left (REG-6).")


@message("registration.contact-changed", 1)
class ContactChanged(_EntityEvent):
    """Contacts of one card in one domain were changed (CHG-1, CHG-2)."""

    card: CardRef
    department_name: str | None = None
    representative_contact: Contact | None = None
    card_department_contact: Contact | None = None


@message("registration.card-renewed", 1)
class CardRenewed(_EntityEvent):
    """The new card replaces the old one; contacts inherited (RNW-7)."""

    company_id: CompanyId
    old_card: CardRef
    new_card: CardFacts


class RevocationReason(enum.StrEnum):
    """Why a card stopped being usable."""

    RENEWED = "renewed"
    """Replaced by ICカード更新 (RNW-7)."""


@message("registration.card-revoked", 1)
class CardRevoked(_EntityEvent):
    """A card is no longer usable at this entity and domain."""

    card: CardRef
    reason: RevocationReason
    replaced_by: CardRef | None = None


@message("registration.rejected", 1)
class RegistrationRejected(Payload):
    """A registration, change or renewal was refused; nothing was changed."""

    command_type: str = Field(min_length=1, max_length=100)
    procuring_entity: EntityCode
    domain: Domain | None = None
    user_id: str | None = Field(default=None, max_length=100)
    card: CardRef | None = None
    violations: tuple[RuleViolation, ...] = Field(min_length=1)
    propagated_from: EntityCode | None = Field(
        default=None, description="Set when another entity's own policy refused a "
        "propagation from this one (REG-9, CHG-3, RNW-8); the source step stands.")
    confirmation_id: uuid.UUID | None = Field(
        default=None, description="The held registration (REG-11) this rejection closes.")


@message("registration.needs-confirmation", 1)
class RegistrationNeedsConfirmation(Payload):
    """A likely mistake held back until the person confirms it (REG-11)."""

    confirmation_id: uuid.UUID
    procuring_entity: EntityCode
    domain: Domain
    user_id: UserIdText
    card: CardRef
    existing_user_ids: tuple[str, ...]
    reason: RuleViolation
    held: CardRegistrationRequested = Field(
        description="The registration as asked; it runs when RegistrationConfirmed arrives.")


PropagatedEvent = CardRegistered | ContactChanged | CardRenewed


@message("registration.propagation-scheduled", 1)
class PropagationScheduled(Payload):
    """What was done at one entity is due at another (REG-9, CHG-3, RNW-8)."""

    propagation_id: uuid.UUID
    kind: PropagationKind
    target_entity: EntityCode
    due_at: AwareDatetime
    immediate: bool = Field(description="The person chose to apply it there at once.")
    source: PropagatedEvent = Field(union_mode="left_to_right")


_FIELD_RULES = {"trade_name": "REG-3", "user_id": "REG-3"}


def input_violations(exc: ValidationError, *, rule_id: str = "REG-7") -> tuple[RuleViolation, ...]:
    """A schema error as REG-7 violations (or REG-3 for lookup fields), one per field.

    Used where a person's input is validated (gateway, scenario runner), so the answer
    names the rule and the field rather than showing a pydantic trace.
    """
    out: list[RuleViolation] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        rule = _FIELD_RULES.get(str(err["loc"][0]) if err["loc"] else "", rule_id)
        out.append(RuleViolation(
            rule_id=rule,
            message_ja=f"入力項目「{loc}」が正しくありません（{err['msg']}）。",
            message_en=f"The field {loc!r} is not valid: {err['msg']}.",
            next_step_ja="文字数・半角/全角・形式（郵便番号 NNN-NNNN、電話 0N-NNNN-NNNN）を確認し、"
            "修正して再度送信してください。",
            next_step_en="Check the length, half-width/full-width and format (postal code "
            "NNN-NNNN, phone 0N-NNNN-NNNN), correct it and send again.",
            field=loc,
        ))
    return tuple(out)
