"""The alert rules and the Grafana dashboard in deploy/: valid, and about metrics that exist.

The rules are judged by Prometheus' own ``promtool`` (Debian's ``prometheus`` package,
installed by deploy/setup.d/10-system.sh): ``check rules`` parses them and their PromQL,
``test rules`` runs deploy/prometheus/hub-alerts.test.yml, series in, alerts out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.registry import REGISTRY

import hub.connector_watch
import hub.metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "hub-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "hub-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "procurement-hub.json"
NAME = re.compile(r"\b(hub_[a-z_]+)\b")


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (deploy/setup.d/10-system.sh)"
    return found


def _expressions(path: Path) -> list[str]:
    """The PromQL of the rules file or of the dashboard's panels."""
    if path.suffix == ".json":
        return [t["expr"] for p in json.loads(path.read_text(encoding="utf-8"))["panels"]
                for t in p.get("targets", ())]
    import yaml

    return [r["expr"] for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
            for r in g["rules"]]


def _exported_names() -> set[str]:
    """Every series name the hub can export (families of hub.metrics and the connectors)."""
    names: set[str] = set()
    watch = hub.connector_watch.ConnectorWatch({})
    try:
        for family in REGISTRY.collect():
            for suffix in ("", "_total", "_bucket", "_count", "_sum", "_created"):
                names.add(family.name + suffix)
    finally:
        watch.close()
    return names


def test_promtool_accepts_the_alert_rules() -> None:
    out = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_the_alerts_fire_on_their_series_and_only_then() -> None:
    out = subprocess.run([_promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True,
                         text=True, timeout=60, check=False, cwd=RULE_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["rules", "dashboard"])
def test_every_metric_named_is_one_the_hub_exports(path: Path) -> None:
    assert hub.metrics.TASK_UP is not None  # the hub's metrics are registered
    exported = _exported_names()
    # The connectors' families are collected at scrape time: present with one connector.
    for family in hub.connector_watch._COLLECTOR.collect():
        exported.update({family.name, family.name + "_total"})
    named = {name for expr in _expressions(path) for name in NAME.findall(expr)}
    assert named, f"{path.name} names no hub metric"
    assert named <= exported, f"{path.name} names metrics the hub does not export: " \
                              f"{sorted(named - exported)}"


def test_the_rules_cover_what_operators_must_hear_of() -> None:
    text = RULES.read_text(encoding="utf-8")
    for alert in ("HubConsumerLagHigh", "HubDeadLettersRising", "HubOutboxRelayDown",
                  "HubTaskDown", "HubConnectorCircuitOpen", "HubMaintenanceOverrun"):
        assert f"alert: {alert}" in text
        assert f"docs/operations.md#{alert.lower()}" in text
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").lower()
    for anchor in re.findall(r"docs/operations\.md#([a-z]+)", text):
        assert f"### {anchor}" in operations, f"docs/operations.md explains no {anchor}"


def test_the_dashboard_is_grafana_json_over_a_prometheus_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "procurement-hub"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("lag", "dead letters", "outbox", "tasks", "circuit", "maintenance"):
        assert topic in titles


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel's PromQL, with Grafana's variables filled in, as a recording rule."""
    import yaml

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}",
                          "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
