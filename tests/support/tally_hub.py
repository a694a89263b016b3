"""A hub in this process with one connector, ``tally``, that counts the ledger entries it
handles, the staff console and the connectors' control API mounted as ``hub run`` mounts
them, and two people of the local user store: 管理者 ``kanri`` (kawagoe-city and mlit)
and 承認者 ``shonin`` (kawagoe-city), for the console's browser and コネクタ page tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings, Guard, Health
from connectors._shared.effects import Effect, Emitter
from connectors._shared.plugin import ConnectorPlugin
from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.control import mount
from hub.db import create_db_engine
from hub.identity import LocalUsers, staff_identity
from hub.plugins import ConnectorRegistry
from hub.runtime import Hub
from hub.settings import StaffSettings
from schemas.envelope import Envelope, new_envelope
from schemas.registry import Payload
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics
from tests.support.ledger import LedgerEntryRequested

PASSWORD = "correct horse battery staple"
ADMIN = "kanri@city.kawagoe.example.jp"
APPROVER = "shonin@city.kawagoe.example.jp"


class TallySettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_TESTTALLY_", extra="ignore", frozen=True)


@dataclass
class Tally:
    handled: list[int] = field(default_factory=list)


class TallyConnector:
    def __init__(self, settings: TallySettings, tally: Tally) -> None:
        self.guard = Guard.from_settings("tally", settings)
        self.tally = tally

    async def health(self) -> Health:
        async def ok() -> str:
            return "ok"

        return await self.guard.probe(ok)


def plugin_for(topic: TopicSpec, tally: Tally) -> ConnectorPlugin:
    def effects(connector: TallyConnector) -> dict[type[Payload], Effect]:
        async def count(ctx: Emitter, envelope: Envelope[Any]) -> None:
            connector.tally.handled.append(envelope.payload.entry_no)

        return {LedgerEntryRequested: count}

    return ConnectorPlugin(name="tally", description="counts what it handles",
                           settings=TallySettings, consumes=(topic,),
                           build=lambda settings: TallyConnector(settings, tally),
                           effects=effects)


@dataclass
class Site:
    hub: Hub
    topic: TopicSpec
    tally: Tally
    url: str
    engine: Any


@contextlib.asynccontextmanager
async def tally_hub(kafka_bootstrap: str, db_url: str, unique: str,
                    tmp_path: Path) -> AsyncIterator[Site]:
    topic = TopicSpec(f"t{unique}.tally", "console connector test", KeyKind.CASE,
                      partitions=2)
    await create_topics(kafka_bootstrap, [topic])
    tally = Tally()
    started = ConnectorRegistry([plugin_for(topic, tally)]).start()
    engine = create_db_engine(db_url)
    users = LocalUsers(tmp_path / "staff-users.json")
    users.add("kanri", PASSWORD, email=ADMIN, entities=["kawagoe-city", "mlit"], roles=["admin"])
    users.add("shonin", PASSWORD, email=APPROVER, entities=["kawagoe-city"],
              roles=["approver"])
    identity = staff_identity(StaffSettings(users_file=users.path), tmp_path)
    settings = settings_for(kafka_bootstrap, db_url, unique)
    console = console_router(engine, identity, ArchiveService(engine, ()),
                             ConsoleConfig(tmp_path))
    hub = Hub(settings, [c.spec for c in started], engine=engine, http_routers=[console])
    mount(hub.http, started, lambda: hub.runtimes, identity, engine=engine)
    await hub.start()
    await wait_for(lambda: hub._server is not None and hub._server.started, what="HTTP up")
    try:
        yield Site(hub, topic, tally, f"http://127.0.0.1:{settings.http_port}", engine)
    finally:
        await hub.stop()
        engine.dispose()




def entry(n: int) -> Any:
    return new_envelope(LedgerEntryRequested(entry_no=n, amount=n), correlation_id=f"case-{n}",
                        procuring_entity="kawagoe-city", producer="test")
