"""TLS on the hub's own HTTP, served by uvicorn with the certificate and key from the
settings, against a CA made in the test; the card agent's side: https only (http:// to
loopback alone), the hub's certificate verified against the configured CA bundle."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from card_agent.cli import main as card_agent_main
from card_agent.client import (
    DEFAULT_HUB_URL,
    GatewayClient,
    InsecureHubUrlError,
    hub_http_client,
)
from hub.contract.wiring import policy_from_settings
from hub.db import create_db_engine
from hub.gateway import GatewayConfig, build_router
from hub.http import build_http_app
from hub.migrations import upgrade
from hub.runtime import server_tls
from hub.settings import HttpSettings, Settings
from tests.support.httpserve import Served
from tests.support.tlsca import LoopbackCa, make_test_ca


async def _ready() -> dict[str, Any]:
    return {}


@pytest.fixture
def ca(tmp_path: Path) -> LoopbackCa:
    return make_test_ca(tmp_path / "ca")


@pytest.fixture
def served(tmp_path: Path, ca: LoopbackCa) -> Any:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    app = build_http_app(_ready)
    app.include_router(build_router(GatewayConfig(engine=engine, card_roots=(),
                                                  signature_roots=())))
    with Served(app, HttpSettings(tls_cert_file=ca.cert_file, tls_key_file=ca.key_file)) as s:
        yield s
    engine.dispose()


def test_the_hub_serves_tls_and_the_agent_verifies_it_with_the_ca_bundle(
        served: Served, ca: LoopbackCa) -> None:
    url = f"https://127.0.0.1:{served.port}"
    with hub_http_client(url, ca_bundle=ca.ca_file) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        challenge = GatewayClient(http)._call("POST", "/gateway/challenges")
        assert challenge["challenge_id"]
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() in (None, "http/1.1")  # uvicorn: HTTP/1.1 only


def test_the_agent_refuses_a_hub_its_ca_bundle_does_not_vouch_for(
        served: Served, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{served.port}"
    other = make_test_ca(tmp_path / "other", "someone else's CA")
    for bundle in (other.ca_file, None):  # a pinned other CA; the system store
        with hub_http_client(url, ca_bundle=bundle) as http, \
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get("/healthz")


def test_plain_http_to_the_tls_port_gets_no_answer(served: Served) -> None:
    with httpx.Client(timeout=10) as http, pytest.raises(httpx.HTTPError):
        http.get(f"http://127.0.0.1:{served.port}/healthz")


def test_the_agent_speaks_plain_http_only_to_this_pc() -> None:
    assert DEFAULT_HUB_URL == "http://127.0.0.1:8480"  # the hub's port, on this PC
    for url in ("http://127.0.0.1:8480", "http://127.1.2.3:8480", "http://[::1]:8480",
                "http://localhost:8480", "https://hub.city.example"):
        hub_http_client(url).close()
    for url in ("http://hub.city.example:8480", "http://192.0.2.10:8480",
                "http://[2001:db8::1]/", "ftp://hub.city.example/"):
        with pytest.raises(InsecureHubUrlError):
            hub_http_client(url)


class _Console:
    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def ask_pin(self, prompt: str) -> str:
        raise AssertionError("no PIN asked")

    def ask_secret(self, prompt: str) -> str:
        raise AssertionError("no secret asked")

    def confirm(self, prompt: str) -> bool:
        raise AssertionError("nothing to confirm")

    def wait_for_card_swap(self, prompt: str) -> None:
        raise AssertionError("no card swap")


def test_the_agent_cli_refuses_http_to_another_host_before_any_card_use() -> None:
    console = _Console()
    code = card_agent_main(["--hub", "http://hub.city.example:8480", "login"], console)
    assert code == 2
    assert "https://" in console.said[0]


def test_tls_settings_reach_uvicorn_and_the_review_links(ca: LoopbackCa,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("HUB_HTTP__TLS_CERT_FILE", str(ca.cert_file))
    monkeypatch.setenv("HUB_HTTP__TLS_KEY_FILE", str(ca.key_file))
    monkeypatch.delenv("HUB_SETTINGS_FILE", raising=False)
    assert Settings().http.tls_cert_file == ca.cert_file
    http = HttpSettings(tls_cert_file=ca.cert_file, tls_key_file=ca.key_file)
    found = server_tls(http)
    assert (found["ssl_certfile"], found["ssl_keyfile"]) == (str(ca.cert_file),
                                                             str(ca.key_file))
    assert found["proxy_headers"] is False  # X-Forwarded-For only from named proxies
    assert server_tls(HttpSettings(forwarded_allow_ips="10.0.0.5"))["proxy_headers"] is True
    assert "ssl_certfile" not in server_tls(HttpSettings())
    policy = policy_from_settings(Settings(http=http))
    assert policy.review_base_url == "https://127.0.0.1:8480/contract/review"
