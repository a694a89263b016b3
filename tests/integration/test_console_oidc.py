"""The staff console's log-in through the real OpenID Connect provider (the Keycloak of
deploy/keycloak.sh): the console sends the person to the provider with the
authorization-code flow and PKCE, the provider's log-in form is filled as a browser
would, and the callback turns the code into the console's session; the person then sees
their own entity's case and the 403 page for another's. A callback with a state of
another browser, or no code, logs nobody in."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.identity import OidcVerifier, StaffIdentity
from hub.settings import OidcSettings
from pipelines.contract.store import save_case
from schemas.contract import ContractStatus
from tests.support.keycloak import ISSUER, SAITAMA_APPROVER, require_keycloak
from tests.support.staff import case

pytestmark = pytest.mark.postgres

_FORM = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"')


@pytest.fixture
def console(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    require_keycloak()
    with Session(engine) as db, db.begin():
        save_case(db, case("S-9", "saitama-pref", SAITAMA_APPROVER[2],
                           ContractStatus.CONTRACTOR_SIGNED))
        save_case(db, case("K-9", "kawagoe-city", "k@city.kawagoe.example.jp",
                           ContractStatus.CONTRACTOR_SIGNED))
    identity = StaffIdentity(oidc=OidcVerifier(OidcSettings(issuer=ISSUER)))
    app = FastAPI()
    app.include_router(console_router(engine, identity, ArchiveService(engine, ()),
                                      ConsoleConfig(tmp_path, public_base="http://127.0.0.1")))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield http


def _provider_login(location: str, username: str, password: str) -> str:
    """The provider's log-in form, filled as a browser would; the redirect back."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(location)
        page.raise_for_status()
        found = _FORM.search(page.text)
        assert found, "no login form on Keycloak's page"
        cookies = "; ".join(f"{c.name}={c.value}" for c in page.cookies.jar)
        sent = browser.post(html.unescape(found.group(1)), headers={"Cookie": cookies},
                            data={"username": username, "password": password,
                                  "credentialId": ""})
        assert sent.status_code == 302, sent.text[:500]
        return str(sent.headers["location"])


def test_a_person_logs_in_with_the_provider_and_sees_only_their_entity(
        console: TestClient) -> None:
    start = console.get("/console/login/oidc", params={"next": "/console/cases/S-9"},
                        follow_redirects=False)
    assert start.status_code == 303
    asked = parse_qs(urlparse(start.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["client_id"] == ["hub-staff"]
    assert asked["redirect_uri"] == ["http://127.0.0.1/console/oidc/callback"]
    back = urlparse(_provider_login(start.headers["location"], *SAITAMA_APPROVER[:2]))
    assert back.path == "/console/oidc/callback"
    stranger = TestClient(console.app, base_url="http://127.0.0.1")
    refused = stranger.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert refused.headers["location"] == "/console/login?error=1"  # not this browser's
    assert "hub_console" not in stranger.cookies
    done = console.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/cases/S-9"
    page = console.get("/console/cases/S-9")
    assert page.status_code == 200
    assert 'id="agree"' in page.text  # a 承認者 of saitama-pref
    other = console.get("/console/cases/K-9")
    assert other.status_code == 403
    assert "IAM-3" in other.text
    again = console.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert again.headers["location"] == "/console/login?error=1"  # nonce spent, code used
