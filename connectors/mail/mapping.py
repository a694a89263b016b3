"""MailRequested → an RFC 5322 / MIME message, and the refusals that can come of it.

Pure: no I/O. The message is UTF-8 throughout: headers with Japanese text are
RFC 2047 encoded words, the attachment's file name is RFC 2231 encoded, and the
body is base64 so that no relay has to carry 8-bit data. ``Message-ID`` comes
from ``mail_id``, so a repeated send is recognisable; ``Auto-Submitted:
auto-generated`` (RFC 3834) marks the mail as machine-sent (NTF-2) so that
vacation responders stay quiet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from connectors.mail.templates import RULE_OF_KIND, MailValueError, render
from schemas.envelope import JST
from schemas.mail import MailRequested
from schemas.rejection import RuleViolation
from schemas.text import show_datetime

__all__ = [
    "Attachment",
    "DownloadLink",
    "Sender",
    "build_message",
    "message_id_for",
    "violation_for",
]


@dataclass(frozen=True)
class Sender:
    address: str
    name: str
    system_name: str
    reply_to: str | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class DownloadLink:
    filename: str
    url: str
    expires_at: datetime


def message_id_for(mail_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of a mail: the same for every send of one ``mail_id``."""
    return f"<{mail_id}@{domain}>"


def violation_for(error: MailValueError) -> RuleViolation:
    """The rejection text for a request that cannot make a safe mail."""
    return RuleViolation(
        rule_id=RULE_OF_KIND[error.kind],
        message_ja=f"お知らせメール（{error.kind.value}）の値「{error.key}」に誤りがあります: "
                   f"{error.problem_ja}",
        message_en=f"Notice mail ({error.kind.value}): value {error.key!r} {error.problem_en}.",
        next_step_ja="改行・制御文字を除き、必要な値をすべて入れて、送信を依頼し直してください。",
        next_step_en="Remove line breaks and control characters, give every required value, "
                     "and request the mail again.",
        field=f"values.{error.key}",
    )


def _jst_text(at: datetime) -> str:
    return show_datetime(at)


def _document_paragraph(attachment: Attachment | None, link: DownloadLink | None) -> str:
    if attachment is not None:
        return f"署名済みの文書（{attachment.filename}）を添付しています。"
    if link is not None:
        # CON-4: 6 MB or more is linked, valid 10 days; the expiry is shown in JST.
        until = _jst_text(link.expires_at)
        return (f"署名済みの文書（{link.filename}）はファイルサイズが大きいため添付していません。\n"
                f"次のリンクからダウンロードしてください（有効期限: {until} まで）。\n"
                f"{link.url}")
    return ""


def build_message(request: MailRequested, sender: Sender, *, date: datetime,
                  attachment: Attachment | None = None,
                  link: DownloadLink | None = None) -> EmailMessage:
    """The MIME message for ``request``. Raises MailValueError for unsafe or missing values."""
    subject, body, footer = render(request.kind, dict(request.values), sender.system_name)
    paragraphs = [body, _document_paragraph(attachment, link), footer]
    text = "\n\n".join(p for p in paragraphs if p)
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    message["To"] = ", ".join(request.to)
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(date.astimezone(JST))
    message["Message-ID"] = message_id_for(request.mail_id, sender.domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Hub-Mail-Kind"] = request.kind.value
    message.set_content(text, charset="utf-8", cte="base64")
    if attachment is not None:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype,
                               subtype=subtype or "octet-stream", filename=attachment.filename)
    return message
