"""The connector registry: entry points found, built-ins present even with stale metadata,
a broken plugin left out, names unique, plugin topics reaching ``hub topics``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from connectors._shared import ConnectorSettings
from connectors._shared.plugin import ENTRY_POINT_GROUP, ConnectorPlugin
from hub import plugins
from hub.cli import main
from hub.plugins import BUILT_IN, ConnectorRegistry, PluginError, all_topics
from schemas.topics import ALL_TOPICS, KeyKind, Topics, TopicSpec

EXTRA = TopicSpec("ext.sample.commands", "sample", KeyKind.CASE)


class _Conn:
    async def health(self) -> Any:
        raise NotImplementedError


def sample(name: str = "sample") -> ConnectorPlugin:
    return ConnectorPlugin(name=name, description="a sample", settings=ConnectorSettings,
                           consumes=(EXTRA,), build=lambda s: _Conn(),
                           effects=lambda c: {})


SAMPLE = sample()


@dataclass
class _EntryPoint:
    name: str
    value: str


def _installed(monkeypatch: pytest.MonkeyPatch, found: list[_EntryPoint]) -> None:
    def fake(*, group: str) -> list[_EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return found

    monkeypatch.setattr(plugins, "entry_points", fake)


def test_the_built_in_connectors_are_installed_entry_points() -> None:
    registry = ConnectorRegistry.discover()
    assert {p.name for p in registry.plugins} >= set(BUILT_IN)
    mail = registry.get("mail")
    assert mail.consumer_name == "connector.mail"
    assert mail.consumes == (Topics.MAIL_REQUESTS,)


def test_an_installed_plugin_is_found_and_a_broken_one_left_out(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _installed(monkeypatch, [_EntryPoint("sample", f"{__name__}:SAMPLE"),
                             _EntryPoint("broken", "no_such_module_anywhere:PLUGIN"),
                             _EntryPoint("wrong", f"{__name__}:EXTRA")])
    with caplog.at_level(logging.WARNING, "hub.plugins"):
        registry = ConnectorRegistry.discover()
    names = {p.name for p in registry.plugins}
    assert "sample" in names
    assert set(BUILT_IN) <= names  # stale metadata: the built-ins still come, with a warning
    assert "broken" not in names
    assert "wrong" not in names
    assert "no entry point installed" in caplog.text
    assert "broken" in caplog.text
    assert "not a ConnectorPlugin" in caplog.text
    assert [p.name for p in ConnectorRegistry.discover(only=["sample"]).plugins] == ["sample"]


def test_names_are_unique_and_well_formed() -> None:
    with pytest.raises(PluginError, match="two connector plugins"):
        ConnectorRegistry([sample(), sample()])
    with pytest.raises(ValueError, match="lower-case"):
        sample("Bad Name")
    with pytest.raises(ValueError, match="consumes no topic"):
        ConnectorPlugin(name="x", description="", settings=ConnectorSettings, consumes=(),
                        build=lambda s: _Conn(), effects=lambda c: {})


def test_plugin_topics_join_the_hubs_own(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    registry = ConnectorRegistry([sample()])
    topics = all_topics(registry)
    assert [t.name for t in topics[:len(ALL_TOPICS)]] == [t.name for t in ALL_TOPICS]
    assert topics[-1] is EXTRA
    _installed(monkeypatch, [_EntryPoint("sample", f"{__name__}:SAMPLE")])
    assert main(["topics", "list"]) == 0
    listed = {t["topic"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["ext.sample.commands"]["dlq"] == "ext.sample.commands.dlq"
    assert "proc.mail.requests" in listed


async def test_started_connectors_become_consumers_and_restart_in_place() -> None:
    registry = ConnectorRegistry([sample()])
    [running] = registry.start()
    assert running.spec.name == "connector.sample"
    assert running.spec.topics == (EXTRA,)
    first = running.connector
    await running.restart()
    assert running.connector is not first
    assert running.restarts == 1
