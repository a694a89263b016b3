"""The 「利用者登録のお知らせ」 mail (seed 004, REG-10) as the registration rules request it
and the mail connector's template renders it: it names the 企業ID issued to the user ID."""

from __future__ import annotations

import re
from datetime import datetime

from connectors.mail.templates import render
from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.common import Outcome
from schemas.envelope import JST
from schemas.mail import MailKind
from schemas.registration import CardRegistered
from tests.support.registration import card, last_service_time, qualification, register

USER = "1234567890"


def test_registration_notice_names_the_company_id_reg10() -> None:
    world = World()
    apply(world, qualification("saitama-pref", USER), datetime.now(JST))
    acted = last_service_time("saitama-pref")
    decision = decide(world, register(USER, card("7001"), "ic@example.jp"),
                      default_policy_book(), datetime.now(JST), acted_at=acted)
    assert decision.outcome is Outcome.ACCEPTED, decision.violations
    registered = next(e for e in decision.events if isinstance(e, CardRegistered))
    (mail,) = decision.mails
    assert mail.kind is MailKind.REGISTRATION
    subject, body, _ = render(mail.kind, dict(mail.values), "埼玉県電子入札共同システム")
    assert subject == "利用者登録のお知らせ"
    assert re.fullmatch(r"\d{16}", registered.company_id)
    lines = body.splitlines()
    assert f"企業ID : {registered.company_id}" in lines
    # The seed's order: 企業名称, then (added for REG-10) 企業ID, then the contact.
    assert lines.index(f"企業ID : {registered.company_id}") == lines.index(
        f"企業名称 : {registered.company_name}") + 1
