"""Staff identity without a provider (hub/identity.py): claims checks, the claims-to-principal
mapping, the verified-token cache's expiry, static tokens mapped to principals, and the
local store's password hashes. The provider itself is tested against a real Keycloak
(tests/integration/test_staff_identity_keycloak.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import HTTPException

from hub.identity import (
    IdentityError,
    OidcVerifier,
    Role,
    StaffIdentity,
    check_claims,
    hash_password,
    staff_identity,
)
from hub.settings import OidcSettings, StaffSettings, StaffTokenSettings

ISSUER = "https://idp.example/realms/procurement"
NOW = 1_800_000_000.0
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def verifier(clock: list[float]) -> OidcVerifier:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    http = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
    return OidcVerifier(OidcSettings(issuer=ISSUER, jwks_url=f"{ISSUER}/certs", leeway_s=10),
                        clock=lambda: clock[0], http=http)


def token(**claims: Any) -> str:
    body = {"iss": ISSUER, "aud": ["procurement-hub", "account"], "sub": "u1",
            "typ": "Bearer", "iat": int(NOW), "exp": int(NOW) + 300,
            "email": "keiyaku@city.kawagoe.example.jp",
            "groups": ["/entities/kawagoe-city", "/entities/kawagoe-city/sub", "/other/x"],
            "realm_access": {"roles": ["contract-officer", "offline_access"]}, **claims}
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_a_person_and_a_client_are_mapped_from_the_claims() -> None:
    clock = [NOW]
    who = verifier(clock).verify(token())
    assert (who.kind, who.email, who.entities, who.roles) == (
        "person", "keiyaku@city.kawagoe.example.jp", frozenset({"kawagoe-city"}),
        frozenset({Role.CONTRACT_OFFICER}))
    client = verifier(clock).verify(token(preferred_username="service-account-erp-batch",
                                          email=None))
    assert (client.kind, client.subject) == ("client", "client:erp-batch")


@pytest.mark.parametrize(("change", "reason"), [
    ({"iss": "https://evil.example/realms/procurement"}, "another provider"),
    ({"aud": "account"}, "another audience"),
    ({"exp": int(NOW) - 11}, "expired"),
    ({"nbf": int(NOW) + 11}, "not valid yet"),
    ({"iat": int(NOW) + 11}, "future"),
    ({"typ": "ID"}, "not an access token"),
])
def test_claims_that_do_not_hold_are_refused(change: dict[str, Any], reason: str) -> None:
    claims = jwt.decode(token(), options={"verify_signature": False}) | change
    with pytest.raises(IdentityError, match=reason):
        check_claims(claims, issuer=ISSUER, audience="procurement-hub", now=NOW, leeway=10)
    ok = jwt.decode(token(exp=int(NOW) - 9), options={"verify_signature": False})
    check_claims(ok, issuer=ISSUER, audience="procurement-hub", now=NOW, leeway=10)


def test_a_cached_token_still_expires() -> None:
    clock = [NOW]
    check = verifier(clock)
    good = token()
    assert check.verify(good).email
    clock[0] = NOW + 300 + 11
    with pytest.raises(IdentityError, match="expired"):
        check.verify(good)
    with pytest.raises(IdentityError, match="expired"):  # and not from the cache either
        check.verify(good)


def test_hs256_with_the_public_key_and_alg_none_are_refused() -> None:
    check = verifier([NOW])
    claims = jwt.decode(token(), options={"verify_signature": False})
    hs = jwt.encode(claims, b"k" * 32, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(IdentityError, match="algorithm"):
        check.verify(hs)


def test_static_tokens_map_to_their_principals(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"batch-token").hexdigest()
    identity = staff_identity(StaffSettings(tokens=(StaffTokenSettings(
        sha256=digest, subject="erp-batch", entities=("kawagoe-city",),
        roles=("contract-officer",)),)), tmp_path)
    who = identity.principal("Bearer batch-token")
    assert (who.subject, who.kind, who.entities) == ("erp-batch", "token",
                                                     frozenset({"kawagoe-city"}))
    with pytest.raises(HTTPException) as caught:
        identity.principal("Bearer other-token")
    assert caught.value.status_code == 401
    # the embedded default: one generated token for every entity and role
    default = staff_identity(StaffSettings(), tmp_path / "run")
    local = (tmp_path / "run" / "staff-token").read_text().strip()
    every = default.principal(f"Bearer {local}")
    assert every.entity_filter() is None
    assert every.roles == frozenset(Role)


def test_a_digest_that_is_not_one_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="not a hex SHA-256") as caught:
        StaffIdentity(tokens=[StaffTokenSettings(sha256="x" * 64, subject="s",
                                                 entities=("a",), roles=("auditor",))])
    assert "x" * 64 not in str(caught.value)


def test_password_hashes_are_salted_scrypt() -> None:
    one, two = hash_password("same password"), hash_password("same password")
    assert one != two
    assert one.startswith("scrypt$16384$8$1$")
    assert "same password" not in one
