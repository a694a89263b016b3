"""The contractor's forms (hub/gateway/pages.py) are checked field by field with the
gateway's own models; each message names its rule, and valid input becomes the body the
agent submits."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.gateway.pages import FORMS, build_pages_router, parse_form

CONTACT = {"contact_name": "営業部", "postal_code": "123-0000", "address": "北東市中央町2-3-4",
           "person_name": "日立 次郎", "phone": "044-812-7358", "email": "a@example.jp",
           "email_confirmation": "a@example.jp"}


def _form(**override: str) -> dict[str, str]:
    data = {"procuring_entity": "mlit", "system": "e-contract", "domain": "works",
            "user_id": "1234567890", "trade_name": "北東組株式会社", "password": "pw",
            **{f"card_department_contact.{k}": v for k, v in CONTACT.items()}}
    return {**data, **override}


def test_valid_registration_becomes_the_gateway_body() -> None:
    body, errors = parse_form(FORMS["register"], _form())
    assert errors == {}
    assert body["card_department_contact"] == CONTACT
    assert "representative_contact" not in body  # left empty: not sent
    assert body["password"] == "pw"


def test_each_bad_field_has_its_own_message_and_rule() -> None:
    _, errors = parse_form(FORMS["register"], _form(**{
        "card_department_contact.email_confirmation": "b@example.jp",
        "card_department_contact.postal_code": "1230000", "system": "fax"}))
    assert set(errors) == {"card_department_contact.email_confirmation",
                           "card_department_contact.postal_code", "system"}
    assert all(message.startswith("[REG-7]") for message in errors.values())
    _, missing = parse_form(FORMS["register"], _form(user_id=""))
    assert missing["user_id"].startswith("[REG-3]")


def test_the_card_department_is_required_for_a_registration_only() -> None:
    bare = {k: v for k, v in _form().items() if not k.startswith("card_")}
    _, errors = parse_form(FORMS["register"], bare)
    assert "card_department_contact.contact_name" in errors
    assert parse_form(FORMS["renew"], {"procuring_entity": "mlit", "system": "e-bid",
                                       "domain": "goods"})[1] == {}


def test_pages_render_in_japanese_and_a_bad_form_is_422_with_the_messages() -> None:
    app = FastAPI()
    app.include_router(build_pages_router("http://127.0.0.1:8489"))
    client = TestClient(app)
    page = client.get("/contractor/register")
    assert page.status_code == 200
    assert "利用者登録" in page.text
    assert "ICカード利用部署情報" in page.text
    assert 'data-agent="http://127.0.0.1:8489"' in page.text
    bad = client.post("/contractor/register", data=_form(**{
        "card_department_contact.email_confirmation": "b@example.jp"}))
    assert bad.status_code == 422
    assert 'id="err-card_department_contact.email_confirmation"' in bad.text
    assert 'value="pw"' not in bad.text  # the password is never echoed back
    ok = client.post("/contractor/register", data=_form(trade_name="</script><b>"))
    assert ok.status_code == 200
    assert "</script><b>" not in ok.text  # the fields are embedded as escaped JSON
    assert ok.headers["cache-control"] == "no-store"
    assert client.get("/contractor/agent.js").headers["content-type"].startswith(
        "text/javascript")
