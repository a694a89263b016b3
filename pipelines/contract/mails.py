"""The contract process's mails: review requests (CON-3) and conclusion notices (CON-4).

The pipeline only asks for a template with its values (schemas/mail.py); the mail
connector renders it. A conclusion notice names the signed PDF by ``attachment_ref``
(:func:`mail_document_ref`: its SHA-256, the key in the hub's document store, and its
file name): the connector attaches it under 6 MB and otherwise mails a link valid 10
days (CON-4).
Mail ids derive from the case and what the mail is for, so a redelivered command asks
for the same mail and the connector sends it once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pipelines.contract.state import CaseState, ContractPolicy, ReviewLink
from schemas.contract import DocumentRef
from schemas.mail import MailKind, MailRequested
from schemas.text import show_datetime

__all__ = ["MAIL_NAMESPACE", "concluded_mails", "mail_document_ref", "review_mail"]

MAIL_NAMESPACE = uuid.UUID("a3c0f7e2-5d0b-4c1a-8f61-2b9d54e7c910")


def _jst(when: datetime) -> str:
    return show_datetime(when)


def mail_document_ref(document: DocumentRef) -> str:
    """How the mail connector finds the signed PDF: its key in the document store."""
    return f"contracts/{document.sha256}/{document.filename}"


def review_mail(state: CaseState, link: ReviewLink, policy: ContractPolicy,
                token: str) -> MailRequested:
    """電子契約の確認依頼 with the review link (its secret ``token``) and expiry (CON-3)."""
    return MailRequested(
        mail_id=uuid.uuid5(MAIL_NAMESPACE, f"{state.case_id}:review:{link.link_id}"),
        kind=MailKind.CONTRACT_REVIEW, to=link.to,
        values={"system_name": policy.system_name, "company_name": state.contractor_name,
                "procuring_entity_name": state.city_name, "case_name": state.subject,
                "review_url": policy.review_url(token),
                "review_expires_at": _jst(link.expires_at)})


def concluded_mails(state: CaseState) -> list[MailRequested]:
    """電子契約締結のお知らせ, one per party, with the signed PDF (CON-4)."""
    assert state.signed is not None
    ref = mail_document_ref(state.signed)
    parties = [(state.contractor_name, state.declared_addresses),
               (state.city_name, (state.city_officer.email.lower(),))]
    return [MailRequested(
        mail_id=uuid.uuid5(MAIL_NAMESPACE, f"{state.case_id}:concluded:{i}:{state.signed.sha256}"),
        kind=MailKind.CONTRACT_CONCLUDED, to=to, attachment_ref=ref,
        values={"company_name": name, "procuring_entity_name": state.city_name,
                "case_name": state.subject})
        for i, (name, to) in enumerate(parties)]
