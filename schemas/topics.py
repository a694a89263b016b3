"""Every Kafka topic of the hub, declared once.

Names read ``proc.<domain>.<kind>``; each topic has a dead-letter twin
``<name>.dlq`` that keeps what could not be processed, with the reason in its
headers. ``hub topics apply`` creates or updates them all. Keys: a procurement
case (``case``) or a contractor (``contractor``), so related messages stay on
one partition, in order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ALL_TOPICS", "DLQ_SUFFIX", "KeyKind", "TopicSpec", "Topics", "by_name"]

DLQ_SUFFIX = ".dlq"
DAY_MS = 86_400_000


class KeyKind(enum.StrEnum):
    """What the record key (the envelope's correlation id) identifies."""

    CASE = "case"
    """A procurement case (案件): award, surety, contract, invoices."""
    CONTRACTOR = "contractor"
    """A contractor's user ID (ユーザID / 業者番号): registration, change, renewal."""
    MESSAGE = "message"
    """Independent messages (mail): spread over partitions by correlation id."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    key: KeyKind
    partitions: int = 6
    retention_ms: int = 7 * DAY_MS
    dlq_retention_ms: int = 30 * DAY_MS

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}

    def dlq_configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.dlq_retention_ms), "cleanup.policy": "delete"}


class Topics:
    """The hub's topics, by domain."""

    REGISTRATION_COMMANDS = TopicSpec(
        "proc.registration.commands",
        "利用者登録・変更・ICカード更新の要求 (registration, change and renewal commands)",
        KeyKind.CONTRACTOR,
    )
    REGISTRATION_EVENTS = TopicSpec(
        "proc.registration.events",
        "登録・変更・更新・失効・却下の結果 (registered, changed, renewed, revoked, rejected)",
        KeyKind.CONTRACTOR,
    )
    QUALIFICATION_UPDATES = TopicSpec(
        "proc.qualification.updates",
        "資格審査情報の更新 (qualification registry updates)",
        KeyKind.CONTRACTOR,
    )
    MAIL_REQUESTS = TopicSpec(
        "proc.mail.requests",
        "送信するお知らせメール (mails to send, NTF rules)",
        KeyKind.MESSAGE,
    )
    MAIL_EVENTS = TopicSpec(
        "proc.mail.events", "メール送信結果 (mail sent or failed)", KeyKind.MESSAGE
    )
    APPLICATION_EVENTS = TopicSpec(
        "proc.application.events",
        "オンライン申請システムからの申請 (forms and attachments received)",
        KeyKind.CASE,
    )
    APPLICATION_COMMANDS = TopicSpec(
        "proc.application.commands",
        "オンライン申請システムへの補正依頼など (corrections sent back)",
        KeyKind.CASE,
    )
    SURETY_COMMANDS = TopicSpec(
        "proc.surety.commands", "電子保証の確認要求 (surety checks requested)", KeyKind.CASE
    )
    SURETY_EVENTS = TopicSpec(
        "proc.surety.events", "電子保証の確認結果 (surety accepted or rejected)", KeyKind.CASE
    )
    CONTRACT_COMMANDS = TopicSpec(
        "proc.contract.commands", "電子契約の操作 (contract conclusion steps)", KeyKind.CASE
    )
    CONTRACT_EVENTS = TopicSpec(
        "proc.contract.events", "電子契約の状態変化 (contract conclusion events)", KeyKind.CASE
    )
    SIGNATURE_COMMANDS = TopicSpec(
        "proc.signature.commands", "署名・タイムスタンプ要求 (signing and timestamp requests)",
        KeyKind.CASE,
    )
    SIGNATURE_EVENTS = TopicSpec(
        "proc.signature.events", "署名・タイムスタンプ結果 (signatures and timestamps)",
        KeyKind.CASE,
    )
    CASE_EVENTS = TopicSpec(
        "proc.case.events",
        "案件情報（契約内容）の登録・変更 (procurement case facts registered or updated)",
        KeyKind.CASE,
    )
    INVOICE_COMMANDS = TopicSpec(
        "proc.invoice.commands", "請求書の受付 (invoices received)", KeyKind.CASE
    )
    INVOICE_EVENTS = TopicSpec(
        "proc.invoice.events", "請求書の受理・却下 (invoices accepted or rejected)", KeyKind.CASE
    )
    ERP_COMMANDS = TopicSpec(
        "proc.erp.commands", "財務会計への登録要求 (ERP registrations requested)", KeyKind.CASE
    )
    ERP_EVENTS = TopicSpec(
        "proc.erp.events", "財務会計への登録結果 (ERP registrations done)", KeyKind.CASE
    )


ALL_TOPICS: tuple[TopicSpec, ...] = tuple(
    v for k, v in vars(Topics).items() if isinstance(v, TopicSpec) and k.isupper()
)


def by_name(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if name in (spec.name, spec.dlq):
            return spec
    raise KeyError(f"no topic named {name!r} is declared in schemas/topics.py")
