"""Mail rendering: templates for every MailKind, MIME encoding, NTF-2, no header injection."""

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from connectors.mail.mapping import (
    Attachment,
    DownloadLink,
    Sender,
    build_message,
    message_id_for,
    violation_for,
)
from connectors.mail.templates import NTF2_NOTICE, MailValueError, required_values
from schemas.mail import CARD_NOTICE_VALUE_KEYS, MailKind, MailRequested

SENDER = Sender("no-reply@city.example", "埼玉県電子入札共同システム", "電子調達ハブ")
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
CARD_VALUES = {
    "system_name": "埼玉県電子入札共同システム",
    "procuring_entity_name": "埼玉県",
    "company_name": "○○建設株式会社",
    "company_id": "1234567890123456",
    "user_id": "1234567890",
    "contact_name": "埼玉 太郎",
    "contact_address": "埼玉県さいたま市○○1丁目23番地",
    "card_serial": "0A1B2C",
    "card_issuer": "CN=Test Card CA",
}


def request(kind: MailKind, values: dict[str, str], ref: str | None = None) -> MailRequested:
    return MailRequested(mail_id=uuid.UUID(int=7), kind=kind, to=("taro@kensetsu.example",),
                         values=values, attachment_ref=ref)


def sample_values(kind: MailKind) -> dict[str, str]:
    return {key: CARD_VALUES.get(key, f"値-{key}") for key in required_values(kind)}


def text_of(message: object) -> str:
    body = message.get_body().get_content()  # type: ignore[attr-defined]
    return str(body).replace("\r\n", "\n")


def wire(message: object) -> bytes:
    return message.as_bytes()  # type: ignore[attr-defined,no-any-return]


def test_registration_mail_is_the_seed_text_reg10() -> None:
    message = build_message(request(MailKind.REGISTRATION, CARD_VALUES), SENDER, date=NOW)
    parsed = message_from_bytes(wire(message), policy=policy.default)
    assert parsed["Subject"] == "利用者登録のお知らせ"
    body = text_of(parsed)
    for line in ("利用者が以下のように登録されましたのでお知らせ致します。",
                 "調達機関 : 埼玉県", "企業名称 : ○○建設株式会社", "連絡先氏名 : 埼玉 太郎",
                 "連絡先住所 : 埼玉県さいたま市○○1丁目23番地",
                 "***** 埼玉県電子入札共同システム *****"):
        assert line in body
    assert body.rstrip().endswith("***** 埼玉県電子入札共同システム *****")
    assert NTF2_NOTICE in body


def test_card_notices_use_only_the_agreed_value_keys() -> None:
    for kind in (MailKind.REGISTRATION, MailKind.CHANGE, MailKind.RENEWAL):
        assert required_values(kind) <= set(CARD_NOTICE_VALUE_KEYS)


@pytest.mark.parametrize("kind", list(MailKind))
def test_every_kind_renders_with_ntf2_and_auto_submitted(kind: MailKind) -> None:
    message = build_message(request(kind, sample_values(kind)), SENDER, date=NOW)
    raw = wire(message)
    assert raw.isascii()  # 7-bit clean: RFC 2047 headers, base64 body
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Message-ID"] == "<00000000-0000-0000-0000-000000000007@city.example>"
    assert NTF2_NOTICE in text_of(parsed)
    assert parsed["Subject"]


def test_japanese_headers_are_rfc2047_encoded() -> None:
    raw = wire(build_message(request(MailKind.REGISTRATION, CARD_VALUES), SENDER, date=NOW))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "Subject: =?utf-8?" in head
    assert "From: =?utf-8?" in head
    assert "<no-reply@city.example>" in head
    assert 'charset="utf-8"' in raw.decode("ascii")


def test_reply_to_is_the_senders_when_it_has_one() -> None:
    with_reply = Sender("no-reply@city.example", "川越市 契約課", "電子調達ハブ",
                        "keiyaku@city.example")
    given = build_message(request(MailKind.REGISTRATION, CARD_VALUES), with_reply, date=NOW)
    none = build_message(request(MailKind.REGISTRATION, CARD_VALUES), SENDER, date=NOW)
    assert message_from_bytes(wire(given), policy=policy.default)["Reply-To"] == (
        "keiyaku@city.example")
    assert message_from_bytes(wire(none), policy=policy.default)["Reply-To"] is None


def test_an_entity_reply_to_must_be_one_address() -> None:
    from pydantic import ValidationError

    from hub.settings import EntityMailSettings

    with pytest.raises(ValidationError):
        EntityMailSettings(from_address="a@city.example", from_name="市",
                           reply_to="a@city.example\r\nBcc: victim@evil.example")


@pytest.mark.parametrize("hostile", ["株式会社\r\nBcc: victim@evil.example", "A\nB", "A\rB",
                                     "A\u2028B", "A\x00B", "A\x1bB"])
def test_line_breaks_in_names_or_subjects_are_refused(hostile: str) -> None:
    with pytest.raises(MailValueError) as info:
        build_message(request(MailKind.REGISTRATION, {**CARD_VALUES, "company_name": hostile}),
                      SENDER, date=NOW)
    violation = violation_for(info.value)
    assert violation.rule_id == "REG-10"
    assert violation.field == "values.company_name"
    with pytest.raises(MailValueError):
        build_message(request(MailKind.GENERIC, {"subject": hostile, "body_1": "x"}),
                      SENDER, date=NOW)


def test_missing_value_is_named() -> None:
    values = {k: v for k, v in CARD_VALUES.items() if k != "contact_name"}
    with pytest.raises(MailValueError, match="contact_name") as info:
        build_message(request(MailKind.CHANGE, values), SENDER, date=NOW)
    assert violation_for(info.value).rule_id == "CHG-4"


def test_generic_lines_in_numeric_order() -> None:
    values = {"subject": "お知らせ", "body_10": "十", "body_2": "二", "body_1": "一"}
    message = build_message(request(MailKind.GENERIC, values), SENDER, date=NOW)
    body = text_of(message)
    assert body.startswith("一\n二\n十\n")


def test_attachment_has_rfc2231_filename_con4() -> None:
    pdf = Attachment("契約書.pdf", "application/pdf", b"%PDF-1.7 signed")
    message = build_message(request(MailKind.CONTRACT_CONCLUDED,
                                    sample_values(MailKind.CONTRACT_CONCLUDED)),
                            SENDER, date=NOW, attachment=pdf)
    raw = wire(message)
    assert b"filename*=utf-8''%E5%A5%91" in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    parts = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert [p.get_filename() for p in parts] == ["契約書.pdf"]
    assert parts[0].get_content() == b"%PDF-1.7 signed"


def test_download_link_with_jst_expiry_con4() -> None:
    link = DownloadLink("契約書.pdf", "https://docs.example/d/1?sig=x",
                        NOW + timedelta(days=10))
    message = build_message(request(MailKind.CONTRACT_CONCLUDED,
                                    sample_values(MailKind.CONTRACT_CONCLUDED)),
                            SENDER, date=NOW, link=link)
    body = text_of(message)
    assert "https://docs.example/d/1?sig=x" in body
    assert "有効期限: 令和8年（2026年）12月4日 12:00 まで" in body  # 03:00 UTC = 12:00 JST
    assert not list(message.iter_attachments())


def test_message_id_is_stable_per_mail_id() -> None:
    mail_id = uuid.uuid4()
    assert message_id_for(mail_id, "a.example") == message_id_for(mail_id, "a.example")
