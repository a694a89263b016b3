"""``hub demo``: the hub's main job on its embedded default, with a sample case.

Starts the reference peers, applies the topics, runs the hub (SQLite file, local
Kafka, every pipeline and connector), then drives one contractor and one case
through what exists: the 資格審査情報 arrive, an IC card is registered (利用者登録),
its contact changed (利用者変更), the card renewed (ICカード更新) and the old card
refused, an electronic surety certificate fetched from D・Sure, the contract
registered in the ERP over SOAP, and the notices mailed. It prints the timeline
as the events come back from Kafka, and the mails the SMTP peer received.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from hub.bootstrap import default_wiring
from hub.dlq import partitions_of
from hub.peers import LocalPeers
from hub.runtime import Hub
from hub.settings import RUN_DIR, Settings
from hub.topics import apply_topics
from schemas.envelope import JST, Envelope, new_envelope, utc_now
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec
from schemas.wire import WireError, decode

__all__ = ["run_demo"]

ENTITY = "mlit"  # 電子契約 (WIN-2: 24/365), so the demo runs at any hour
WATCHED = (Topics.REGISTRATION_EVENTS, Topics.MAIL_EVENTS, Topics.SURETY_EVENTS,
           Topics.ERP_EVENTS)


@dataclass
class Timeline:
    """Events of this demo's case and contractor, as they come back from Kafka."""

    settings: Settings
    keys: set[str]
    seen: list[tuple[str, Envelope[Any]]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self.settings.kafka.aiokafka_kwargs(),
                                          group_id=None, enable_auto_commit=False)
        await self._consumer.start()
        parts = await partitions_of(self._consumer, [t.name for t in WATCHED])
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before anything is published
            await self._consumer.position(tp)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_for(self, message_type: str, timeout_s: float = 60,
                       where: Callable[[Envelope[Any]], bool] = lambda _: True) -> Envelope[Any]:
        assert self._consumer is not None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            for _, env in self.seen:
                if env.type == message_type and where(env):
                    return env
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {message_type} within {timeout_s:.0f} s")
            batch = await self._consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batch.values():
                for r in records:
                    try:
                        env = decode(r.value, r.headers)
                    except WireError:
                        continue
                    if env.correlation_id in self.keys:
                        self.seen.append((r.topic, env))
                        print(_line(r.topic, env), flush=True)


def _line(topic: str, env: Envelope[Any]) -> str:
    at = env.occurred_at.astimezone(JST).strftime("%H:%M:%S.%f")[:-3]
    return f"  {at} JST  {topic:<26} {env.type:<42} {_summary(env.payload)}"


def _summary(p: Payload) -> str:
    d = p.model_dump(mode="json")
    if "violations" in d:
        return "REJECTED " + "; ".join(f"{v['rule_id']} {v['message_ja']}" for v in d["violations"])
    picks = ("company_id", "user_id", "erp_reference", "business_key", "smtp_message_id",
             "duplicate")
    parts = [f"{k}={d[k]}" for k in picks if d.get(k) not in (None, "")]
    if "card" in d and isinstance(d["card"], dict):
        parts.append(f"card serial={d['card']['serial']}")
    if "certificate" in d:
        c = d["certificate"]
        parts.append(f"保証契約番号={c.get('contract_number')} "
                     f"保証金額={c.get('guarantee_amount')}")
    return " ".join(parts)[:150]


def _qualification(user_id: str) -> Any:
    from schemas.qualification import QualificationUpdated

    return QualificationUpdated.model_validate_json(json.dumps({
        "procuring_entity": ENTITY, "domain": "works", "rows": [{
            "user_id": user_id, "trade_name": "北東組株式会社", "postal_code": "123-0000",
            "head_office_address": "北東市中央町2丁目3番4号", "representative_name": "日立 二郎",
            "representative_title": "代表取締役社長", "contractor_name": "北東 次郎",
            "corporate_number": "5835678256246"}]}))


def _contact(email_address: str) -> dict[str, str]:
    return {"contact_name": "営業部", "postal_code": "123-0000",
            "address": "北東市中央町2丁目3番4号", "person_name": "日立 次郎",
            "phone": "044-812-7358", "fax": "044-812-8681", "email": email_address,
            "email_confirmation": email_address}


def _card(pki: Any, serial: int) -> dict[str, Any]:
    from hub.gateway.cardauth import card_facts

    creds = pki.issue_card("北東 次郎", "北東市中央町2丁目3番4号", serial)
    facts: dict[str, Any] = json.loads(card_facts(creds.certificate, utc_now()).model_dump_json())
    return facts


def _command(kind: type[Payload], body: dict[str, Any]) -> Payload:
    return kind.model_validate_json(json.dumps(body, ensure_ascii=False))


async def _case(pub: Any, timeline: Timeline, user_id: str, case_id: str) -> None:
    from connectors.devpki import ensure_pki
    from schemas import registration as reg
    from schemas.erp import ErpRegistrationRequested
    from schemas.surety import SuretyCheckRequested

    pki = ensure_pki(RUN_DIR / "pki")
    old_card, new_card = _card(pki, random.randint(10**6, 10**9)), \
        _card(pki, random.randint(10**6, 10**9))
    common = {"procuring_entity": ENTITY, "system": "e-contract", "domain": "works",
              "user_id": user_id}

    async def send(topic: TopicSpec, payload: Payload, key: str) -> None:
        await pub.publish(topic, new_envelope(payload, correlation_id=key,
                                              procuring_entity=ENTITY, producer="hub.demo"))

    print("1. 資格審査情報 (qualification registry) for user ID", user_id)
    await send(Topics.QUALIFICATION_UPDATES, _qualification(user_id), user_id)
    await asyncio.sleep(1)
    print("2. 利用者登録: registering IC card", old_card["serial"])
    await send(Topics.REGISTRATION_COMMANDS, _command(reg.CardRegistrationRequested, {
        **common, "trade_name": "北東組(株)", "password_verified": True, "card": old_card,
        "department_name": "営業部", "representative_contact": _contact("hokuto@example.jp"),
        "card_department_contact": _contact("ic-card@example.jp"), "apply_now_to": []}),
        user_id)
    registered = await timeline.wait_for("registration.card-registered")
    await timeline.wait_for("mail.sent")
    print(f"   企業ID {registered.payload.company_id} issued; notice mailed (REG-10)")
    print("3. 利用者変更: new e-mail for the ICカード利用部署")
    await send(Topics.REGISTRATION_COMMANDS, _command(reg.ContactChangeRequested, {
        **common, "card": old_card, "card_department_contact": _contact("new-ic@example.jp"),
        "apply_to_other_entities": False, "apply_now_to": []}), user_id)
    await timeline.wait_for("registration.contact-changed")
    print("4. ICカード更新: old card", old_card["serial"], "→ new card", new_card["serial"])
    await send(Topics.REGISTRATION_COMMANDS, _command(reg.CardRenewalRequested, {
        **common, "old_card": old_card, "new_card": new_card,
        "apply_to_other_entities": False, "apply_now_to": []}), user_id)
    await timeline.wait_for("registration.card-renewed")
    print("5. the old card is used again (must be refused, RNW-7)")
    await send(Topics.REGISTRATION_COMMANDS, _command(reg.ContactChangeRequested, {
        **common, "card": old_card, "card_department_contact": _contact("x@example.jp"),
        "apply_to_other_entities": False, "apply_now_to": []}), user_id)
    await timeline.wait_for("registration.rejected")
    print("6. 電子保証: D・Sure lookup with 保証契約番号 + 認証キー (SUR-1, SUR-2)")
    await send(Topics.SURETY_COMMANDS, SuretyCheckRequested.model_validate_json(json.dumps({
        "contract_number": "31072-0001M", "auth_key": "Z28YUE4J3Bux", "source": "upload"})),
        case_id)
    await timeline.wait_for("surety.certificate-fetched")
    print("7. 財務会計: contract registered over SOAP (twice: the ERP answers the repeat "
          "as a duplicate)")
    today = datetime.now(JST).date()
    contract = ErpRegistrationRequested.model_validate_json(json.dumps({
        "kind": "contract", "business_key": f"contract-{case_id}", "contract_number": case_id,
        "contractor_id": registered.payload.company_id, "contractor_name": "北東組株式会社",
        "amount_jpy": 50_000_000, "subject": "市道１号線舗装工事",
        "contract_date": str(today), "period_start": str(today),
        "period_end": str(today + timedelta(days=180))}))
    await send(Topics.ERP_COMMANDS, contract, case_id)
    await timeline.wait_for("erp.registered")
    await send(Topics.ERP_COMMANDS, contract, case_id)
    await timeline.wait_for("erp.registered", where=lambda e: bool(e.payload.duplicate))
    await asyncio.sleep(2)  # the last mails


def _mails(spool: Path, since: float) -> list[str]:
    out = []
    for path in sorted(spool.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        if path.stat().st_mtime < since:
            continue
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append(f"  {msg['Date']}  to {msg['To']}  「{msg['Subject']}」")
    return out


async def run_demo(settings: Settings) -> int:
    run = RUN_DIR / "peers"
    peers = LocalPeers(run)
    print("Starting the reference peers:")
    peers.start()
    print("\n".join("  " + line for line in peers.describe()))
    started = utc_now().timestamp()
    hub: Hub | None = None
    timeline: Timeline | None = None
    try:
        report = await apply_topics(settings.kafka)
        print(f"Topics: {len(report.created)} created, {len(report.unchanged)} already there "
              f"(Kafka at {settings.kafka.bootstrap_servers})")
        wiring = default_wiring(settings)
        hub = Hub(settings, wiring.consumers, engine=wiring.engine, jobs=wiring.jobs,
                  http_routers=wiring.routers, publisher=wiring.publisher,
                  closers=wiring.closers)
        user_id = "".join(random.choice("0123456789") for _ in range(10))
        case_id = f"R8-{uuid.uuid4().hex[:6].upper()}"
        timeline = Timeline(settings, {user_id, case_id})
        await timeline.start()
        await hub.start()
        print(f"Hub running: {len(wiring.consumers)} consumers, database "
              f"{wiring.engine.url.render_as_string(hide_password=True)}, "
              f"http://{settings.http_host}:{settings.http_port}/readyz")
        print(f"\nSample: contractor {user_id} (北東組株式会社) at {ENTITY}, case {case_id}\n")
        await _case(wiring.publisher, timeline, user_id, case_id)
        print("\nMails received by the SMTP peer (", run / "mail", "):")
        print("\n".join(_mails(run / "mail", started)) or "  (none)")
        print(f"\nDone: {len(timeline.seen)} events of this case came back through Kafka.")
        return 0
    except TimeoutError as exc:
        print(f"\nThe sample case stopped: {exc}. Logs: {run}/*.log and the lines above.")
        return 1
    finally:
        if timeline is not None:
            await timeline.stop()
        if hub is not None:
            await hub.stop()
        peers.stop()
