"""The SMTP client (RFC 5321) of the mail connector, and how its failures are classified.

smtplib runs in a worker thread, one connection per mail, bounded by the
connector's timeout. Every failure leaves here classified: 4xx replies, dropped
connections, timeouts and unreadable replies are transient (retried, nothing is
lost); 5xx replies are permanent (the relay will never take this mail). The
password goes to the relay only: it is in no error text nor log line.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from typing import ParamSpec, TypeVar

from connectors._shared.errors import ConnectorError, PermanentPeerError, TransientPeerError
from connectors._shared.policy import default_classify
from connectors.mail.settings import MailSettings
from schemas.rejection import RuleViolation

__all__ = ["SmtpAdapter", "classify_smtp"]

NAME = "mail"
P = ParamSpec("P")
T = TypeVar("T")


def _refusal(reason: str, detail_ja: str) -> PermanentPeerError:
    violation = RuleViolation(
        rule_id="NTF-1",
        message_ja=f"お知らせメールを送信できません。送信サーバが拒否しました（{detail_ja}）。",
        message_en=f"The notice mail cannot be sent: the mail relay refused it ({reason}).",
        next_step_ja="宛先のメールアドレスを確認し、誤りがあれば利用者変更で訂正してください。",
        next_step_en="Check the recipient address; if it is wrong, correct it with a user change.",
    )
    return PermanentPeerError(NAME, reason, (violation,))


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(raw.split())[:200]}"


def classify_smtp(connector: str, exc: BaseException) -> ConnectorError | None:
    """An smtplib (or network) failure as a transient or permanent peer error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = [_reply(code, text) for code, text in exc.recipients.values()]
        if all(code >= 500 for code, _ in exc.recipients.values()):
            return _refusal("recipients refused: " + "; ".join(replies), "宛先不明")
        return TransientPeerError(connector, "recipients deferred: " + "; ".join(replies))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentPeerError(
            connector, f"authentication refused ({exc.smtp_code}); check HUB_MAIL_USERNAME and "
            "HUB_MAIL_PASSWORD")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentPeerError(connector, f"relay does not support it: {exc}; check "
                                  "HUB_MAIL_SECURITY")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code >= 500:
            return _refusal(f"refused: {reply}", reply)
        if exc.smtp_code >= 400:
            return TransientPeerError(connector, f"deferred: {reply}")
        return TransientPeerError(connector, f"unreadable reply: {reply}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientPeerError(connector, f"disconnected: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return TransientPeerError(connector, f"{type(exc).__name__}: {exc}")
    return default_classify(connector, exc)


class SmtpAdapter:
    """Sends one MIME message over SMTP; raises only classified errors."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                    context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            if s.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
            if s.username and s.password:
                conn.login(s.username, s.password.get_secret_value())
        except BaseException:
            conn.close()
            raise
        return conn

    def _send(self, message: EmailMessage, recipients: tuple[str, ...]) -> None:
        with self._connect() as conn:
            conn.send_message(message, from_addr=self.settings.from_address,
                              to_addrs=list(recipients))

    def _noop(self) -> str:
        with self._connect() as conn:
            code, text = conn.noop()
        return _reply(code, text)

    async def _run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except Exception as exc:
            error = classify_smtp(NAME, exc)
            if error is None:
                raise
            raise error from exc

    async def send(self, message: EmailMessage, recipients: Iterable[str]) -> None:
        """Hand the message to the relay. Some recipients refused, some taken: sent."""
        await self._run(self._send, message, tuple(recipients))

    async def ping(self) -> str:
        """Connect, greet and NOOP: the relay's answer, for the health check."""
        return await self._run(self._noop)
