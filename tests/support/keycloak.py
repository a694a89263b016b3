"""The real Keycloak that deploy/keycloak.sh starts (realm deploy/keycloak/realm-procurement.json):
a person's log-in through the authorization-code flow with PKCE, a back-office system's
client-credentials token, and the admin API for rotating the realm's signing key."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYCLOAK = os.environ.get("HUB_TEST_KEYCLOAK", "http://127.0.0.1:8380")
REALM = "procurement"
ISSUER = f"{KEYCLOAK}/realms/{REALM}"
OIDC = f"{ISSUER}/protocol/openid-connect"
STAFF_CLIENT = "hub-staff"
REDIRECT = "http://127.0.0.1/callback"

# The realm file's test users and clients (dev-only credentials, loopback only).
KAWAGOE_OFFICER = ("kawagoe-keiyaku", "dev-only-kawagoe-keiyaku",
                   "keiyaku@city.kawagoe.example.jp")
SAITAMA_APPROVER = ("saitama-shonin", "dev-only-saitama-shonin",
                    "shonin@pref.saitama.example.jp")
AUDITOR = ("kansa", "dev-only-kansa", "kansa@pref.saitama.example.jp")
KAWAGOE_BATCH = ("erp-batch-kawagoe", "dev-only-erp-batch-kawagoe-secret")
OTHER_APP = ("other-app", "dev-only-other-app-secret")

_FORM = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"')


def require_keycloak() -> None:
    try:
        httpx.get(f"{ISSUER}/.well-known/openid-configuration", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"no Keycloak realm at {ISSUER}: start it with `bash deploy/keycloak.sh "
                    f"start` (deploy/test.sh does this): {exc}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def login(username: str, password: str) -> str:
    """A person's access token: authorization code with PKCE (S256), as a browser would."""
    verifier = secrets.token_urlsafe(48)
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(f"{OIDC}/auth", params={
            "client_id": STAFF_CLIENT, "response_type": "code", "scope": "openid",
            "redirect_uri": REDIRECT, "state": secrets.token_urlsafe(8),
            "code_challenge": challenge, "code_challenge_method": "S256"})
        page.raise_for_status()
        found = _FORM.search(page.text)
        assert found, "no login form on Keycloak's page"
        # Keycloak marks its session cookies Secure; browsers send them to a loopback
        # http:// origin (a secure context), httpx's cookie jar does not: send them as such.
        cookies = "; ".join(f"{c.name}={c.value}" for c in page.cookies.jar)
        sent = browser.post(html.unescape(found.group(1)), headers={"Cookie": cookies},
                            data={"username": username, "password": password,
                                  "credentialId": ""})
        assert sent.status_code == 302, sent.text[:500]
        code = parse_qs(urlparse(sent.headers["location"]).query)["code"][0]
        token = browser.post(f"{OIDC}/token", data={
            "grant_type": "authorization_code", "client_id": STAFF_CLIENT, "code": code,
            "redirect_uri": REDIRECT, "code_verifier": verifier})
        token.raise_for_status()
        return str(token.json()["access_token"])


def client_token(client_id: str, secret: str) -> str:
    """A back-office system's access token: client credentials."""
    answer = httpx.post(f"{OIDC}/token", data={"grant_type": "client_credentials",
                                                "client_id": client_id,
                                                "client_secret": secret}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _admin_password() -> str:
    if password := os.environ.get("HUB_TEST_KEYCLOAK_ADMIN_PASSWORD"):
        return password
    run_dir = Path(os.environ.get("HUB_RUN_DIR", ROOT / ".run"))
    return (run_dir / "keycloak" / "admin-password").read_text().strip()


def _admin() -> httpx.Client:
    token = httpx.post(f"{KEYCLOAK}/realms/master/protocol/openid-connect/token", data={
        "grant_type": "password", "client_id": "admin-cli", "username": "admin",
        "password": _admin_password()}, timeout=30)
    token.raise_for_status()
    return httpx.Client(base_url=f"{KEYCLOAK}/admin/realms/{REALM}", timeout=30, headers={
        "Authorization": f"Bearer {token.json()['access_token']}"})


def add_signing_key() -> str:
    """A new RS256 key with the highest priority (the realm signs with it from now on);
    returns its component id for :func:`remove_signing_key`."""
    with _admin() as admin:
        realm_id = admin.get("").json()["id"]
        made = admin.post("/components", json={
            "name": f"rotated-{secrets.token_hex(4)}", "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm_id,
            "config": {"priority": [str(int(time.time()))], "keySize": ["2048"],
                       "algorithm": ["RS256"], "active": ["true"], "enabled": ["true"]}})
        assert made.status_code == 201, made.text
        return made.headers["location"].rsplit("/", 1)[-1]


def remove_signing_key(component_id: str) -> None:
    with _admin() as admin:
        admin.delete(f"/components/{component_id}").raise_for_status()
