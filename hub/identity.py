"""Staff identity: who calls the staff API, for which procuring entities, in which roles.

Every staff request carries ``Authorization: Bearer <token>`` and becomes a
:class:`Principal` (subject, e-mail, kind, entities, roles) through one of three issuers:

- the staff's **OpenID Connect provider** (Keycloak in the tests): an access token obtained
  by a person with the authorization-code flow and PKCE, or by a back-office system with
  client credentials, verified against the provider's JWKS (:class:`OidcVerifier`):
  signature with an allowed asymmetric algorithm, issuer, audience, expiry and
  not-before with a leeway. A token whose key id is unknown refetches the JWKS (key
  rotation), at most once per ``jwks_min_refetch_s``;
- the **built-in local user store** (:class:`LocalUsers`), for small installations and
  ``hub demo``: scrypt password hashes, ``POST /auth/token`` issues a short-lived token
  signed with the hub's own key (:class:`LocalIssuer`);
- **static bearer tokens** (``HUB_STAFF__TOKEN_SHA256`` / ``HUB_STAFF__TOKENS``): only
  their SHA-256 digests are configured, each mapped to a principal.

Entities come from the token (the provider's groups under ``/entities/``), never from a
request body; so does the acting officer. Roles: 契約担当 ``contract-officer``, 承認者
``approver``, 管理者 ``admin``, 監査 ``auditor`` (docs/identity.md). Refusals name
IAM-1 (no valid token, 401), IAM-2 (role, 403) or IAM-3 (entity, 403) in Japanese and
English with what to do next. No token, password or key is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
from fastapi import HTTPException

from hub.settings import OidcSettings, StaffSettings, StaffTokenSettings
from schemas.rejection import RuleViolation

__all__ = [
    "ALL_ENTITIES",
    "IdentityError",
    "LocalIssuer",
    "LocalUsers",
    "OidcVerifier",
    "Principal",
    "Role",
    "StaffIdentity",
    "denied_entity",
    "denied_role",
    "hash_password",
    "unauthenticated",
]

log = logging.getLogger(__name__)

ALL_ENTITIES = "*"
"""In a principal's entities: every procuring entity (single-entity installations)."""


class Role(StrEnum):
    CONTRACT_OFFICER = "contract-officer"
    APPROVER = "approver"
    ADMIN = "admin"
    AUDITOR = "auditor"

    @property
    def ja(self) -> str:
        return _ROLE_JA[self]


_ROLE_JA = {Role.CONTRACT_OFFICER: "契約担当", Role.APPROVER: "承認者", Role.ADMIN: "管理者",
            Role.AUDITOR: "監査"}

Kind = Literal["person", "client", "token"]


@dataclass(frozen=True)
class Principal:
    """The caller, as its token says."""

    subject: str
    kind: Kind
    entities: frozenset[str]
    roles: frozenset[Role]
    email: str | None = None
    name: str | None = None
    issuer: str = ""

    @property
    def who(self) -> str:
        """What the audit trail names: the e-mail of a person, else the subject."""
        return self.email or self.subject

    def covers(self, entity: str) -> bool:
        return ALL_ENTITIES in self.entities or entity in self.entities

    def entity_filter(self) -> frozenset[str] | None:
        """The entities a query is limited to; ``None``: every entity."""
        return None if ALL_ENTITIES in self.entities else self.entities


class IdentityError(ValueError):
    """A token that does not verify; the message names the check, never the token."""


def unauthenticated(reason: str = "") -> HTTPException:
    violation = RuleViolation(
        rule_id="IAM-1",
        message_ja="職員の認証ができません（トークンがない、期限切れ、または正しくありません）。"
                   "契約の保管庫と職員の操作は、発注者の職員だけが使えます。",
        message_en="No valid staff token (missing, expired or not verifiable)"
                   + (f": {reason}" if reason else "") + ". The contract archive and the "
                   "staff's steps are for the procuring entities' staff only.",
        next_step_ja="組織の認証基盤（OpenID Connect）で再ログインし、アクセストークンを"
                     "「Authorization: Bearer <トークン>」ヘッダーで送ってください。",
        next_step_en="Log in again with your organisation's OpenID Connect provider and send "
                     "the access token as 'Authorization: Bearer <token>'.")
    return HTTPException(401, detail={"violations": [violation.model_dump()]},
                         headers={"WWW-Authenticate": 'Bearer realm="staff"'})


def denied_role(needed: Iterable[Role]) -> HTTPException:
    roles = sorted(needed)
    violation = RuleViolation(
        rule_id="IAM-2",
        message_ja="この操作には「" + "・".join(r.ja for r in roles) + "」の役割が必要です。",
        message_en="This step needs the role " + " or ".join(r.value for r in roles) + ".",
        next_step_ja="役割の割り当てを管理者に依頼するか、その役割を持つ職員に依頼してください。",
        next_step_en="Ask an administrator to assign the role, or ask a colleague who has it.")
    return HTTPException(403, detail={"violations": [violation.model_dump()]})


_WHAT = {"case": ("案件", "case"), "dead-letter": ("デッドレター", "dead letter"),
         "registration": ("登録", "registration")}


def denied_entity(entity: str, what: str = "case") -> HTTPException:
    ja, en = _WHAT[what]
    violation = RuleViolation(
        rule_id="IAM-3",
        message_ja=f"この{ja}は発注機関「{entity}」のものです。あなたの所属機関の{ja}では"
                   "ないため、見ることも操作することもできません。",
        message_en=f"This {en} belongs to the procuring entity {entity}, which is not one of "
                   "yours: you can neither see nor act on it.",
        next_step_ja="所属機関の割り当てが誤っている場合は、管理者に修正を依頼してください。",
        next_step_en="If your entity assignment is wrong, ask an administrator to correct it.")
    return HTTPException(403, detail={"violations": [violation.model_dump()]})


def _roles(names: Iterable[object]) -> frozenset[Role]:
    known = {r.value for r in Role}
    return frozenset(Role(str(n)) for n in names if str(n) in known)


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _issuer_or_none(token: str) -> object:
    try:
        return _issuer(token)
    except IdentityError:
        return None


def _issuer(token: str) -> object:
    """The unverified ``iss`` claim: only to choose the verifier, which checks it."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError as exc:
        raise IdentityError("not a well-formed token") from exc


# -- OpenID Connect -------------------------------------------------------------------

@dataclass
class _Keys:
    by_kid: dict[str, Any] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    fetches: int = 0


class OidcVerifier:
    """Verifies the provider's access tokens against its JWKS, refetched on an unknown kid."""

    def __init__(self, settings: OidcSettings, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 http: httpx.Client | None = None) -> None:
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self._clock = clock
        self._monotonic = monotonic
        self._http = http or httpx.Client(timeout=settings.timeout_s)
        self._keys = _Keys()
        self._lock = threading.Lock()
        self._jwks_url = settings.jwks_url
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    @property
    def jwks_fetches(self) -> int:
        return self._keys.fetches

    def _jwks_uri(self) -> str:
        if self._jwks_url is None:
            found = self._http.get(self.issuer + "/.well-known/openid-configuration")
            found.raise_for_status()
            self._jwks_url = str(found.json()["jwks_uri"])
        return self._jwks_url

    def _refetch(self) -> None:
        answer = self._http.get(self._jwks_uri())
        answer.raise_for_status()
        keys: dict[str, Any] = {}
        for jwk in answer.json().get("keys", ()):
            if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            try:
                keys[str(jwk["kid"])] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # an algorithm this verifier does not take
        self._keys = _Keys(keys, self._monotonic(), self._keys.fetches + 1)

    def _key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys.by_kid and (
                    self._monotonic() - self._keys.fetched_at
                    >= self.settings.jwks_min_refetch_s):
                try:
                    self._refetch()
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    raise IdentityError(f"the provider's keys could not be fetched ({exc})"
                                        ) from exc
            key = self._keys.by_kid.get(kid)
        if key is None:
            raise IdentityError("the token's signing key is not among the provider's keys")
        return key

    def claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise IdentityError("not a well-formed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.settings.algorithms:
            raise IdentityError(f"signature algorithm {alg!r} is not accepted")
        if not isinstance(kid, str):
            raise IdentityError("the token names no signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key(kid), algorithms=[alg],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False})
        except jwt.PyJWTError as exc:
            raise IdentityError("the signature does not verify") from exc
        check_claims(claims, issuer=self.issuer, audience=self.settings.audience,
                     now=self._clock(), leeway=self.settings.leeway_s)
        return claims

    _CACHE_SIZE = 4096

    def has_verified(self, token: str) -> bool:
        """Whether ``token`` was verified before (its expiry is checked again on use)."""
        return hashlib.sha256(token.encode("utf-8")).digest() in self._verified

    def verify(self, token: str) -> Principal:
        """The token's principal. A token verified once is kept (by its SHA-256, at most
        ``_CACHE_SIZE``) until it expires: its expiry is checked again on every use, its
        signature, issuer and audience need not be."""
        key = hashlib.sha256(token.encode("utf-8")).digest()
        hit = self._verified.get(key)
        if hit is not None:
            who, exp = hit
            if self._clock() > exp + self.settings.leeway_s:
                self._verified.pop(key, None)
                raise IdentityError("the token has expired")
            return who
        claims = self.claims(token)
        who = self._principal(claims)
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)), None)  # the oldest entry
        self._verified[key] = (who, float(claims["exp"]))
        return who

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        prefix = self.settings.entity_group_prefix
        groups = [str(g) for g in claims.get("groups") or ()]
        entities = frozenset(g[len(prefix):] for g in groups if g.startswith(prefix)
                             and "/" not in g[len(prefix):])
        realm_access = claims.get("realm_access") or {}
        roles = _roles(realm_access.get("roles") or () if isinstance(realm_access, dict)
                       else ())
        username = str(claims.get("preferred_username") or "")
        client = (claims.get("client_id") or claims.get("clientId")
                  or (username.removeprefix("service-account-")
                      if username.startswith("service-account-") else None))
        if client:
            return Principal(subject=f"client:{client}", kind="client", entities=entities,
                             roles=roles, issuer=self.issuer)
        email = claims.get("email")
        return Principal(subject=str(claims["sub"]), kind="person", entities=entities,
                         roles=roles, email=str(email) if email else None,
                         name=str(claims.get("name") or username) or None, issuer=self.issuer)


def check_claims(claims: Mapping[str, Any], *, issuer: str, audience: str, now: float,
                 leeway: int) -> None:
    """Issuer, audience, expiry, not-before and issued-at, with ``leeway`` seconds of skew."""
    if str(claims.get("iss", "")).rstrip("/") != issuer:
        raise IdentityError("the token was issued by another provider")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else list(aud or ())
    if audience not in audiences:
        raise IdentityError("the token is meant for another audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise IdentityError("the token has no expiry")
    if now > exp + leeway:
        raise IdentityError("the token has expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now + leeway < nbf:
        raise IdentityError("the token is not valid yet")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and now + leeway < iat:
        raise IdentityError("the token was issued in the future")
    if claims.get("typ") not in (None, "Bearer", "at+jwt"):
        raise IdentityError("the token is not an access token")


# -- the built-in local user store ------------------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None, *, n: int = _SCRYPT["n"],
                  r: int = _SCRYPT["r"], p: int = _SCRYPT["p"]) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64): what the local user store keeps."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def _password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                               n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


_DUMMY_HASH = hash_password("x", b"0" * 16)


class LocalUsers:
    """Users kept in a JSON file: ``{"users": [{"username", "email", "name", "entities",
    "roles", "password": "scrypt$..."}]}`` (mode 0600, written by ``hub users add``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        users: list[dict[str, Any]] = json.loads(self.path.read_text("utf-8")).get("users", [])
        return users

    def add(self, username: str, password: str, *, email: str | None, entities: Iterable[str],
            roles: Iterable[str], name: str | None = None) -> None:
        unknown = set(roles) - {r.value for r in Role}
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; roles: {[r.value for r in Role]}")
        users = [u for u in self._load() if u["username"] != username]
        users.append({"username": username, "email": email, "name": name,
                      "entities": sorted(set(entities)), "roles": sorted(set(roles)),
                      "password": hash_password(password)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"users": users}, out, ensure_ascii=False, indent=2)
        os.replace(tmp, self.path)

    def authenticate(self, username: str, password: str) -> Principal | None:
        found = next((u for u in self._load() if u["username"] == username), None)
        # An unknown user costs one scrypt too: the time taken does not say who exists.
        ok = _password_matches(password, found["password"] if found else _DUMMY_HASH)
        if not found or not ok:
            return None
        return Principal(subject=f"local:{username}", kind="person",
                         entities=frozenset(found.get("entities") or ()),
                         roles=_roles(found.get("roles") or ()), email=found.get("email"),
                         name=found.get("name") or username, issuer=LocalIssuer.ISSUER)


class LocalIssuer:
    """Tokens for the local user store's people, signed with the hub's own HMAC key
    (``RUN_DIR/staff-signing-key``, mode 0600), verified like the provider's."""

    ISSUER = "urn:procurement-hub:local"

    def __init__(self, key_file: Path, *, audience: str, ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.audience, self.ttl_s, self._clock = audience, ttl_s, clock
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(secrets.token_hex(32) + "\n")
        self._key = bytes.fromhex(key_file.read_text("utf-8").strip())

    def issue(self, who: Principal) -> str:
        now = int(self._clock())
        return jwt.encode({
            "iss": self.ISSUER, "aud": self.audience, "sub": who.subject, "iat": now,
            "exp": now + self.ttl_s, "email": who.email, "name": who.name,
            "entities": sorted(who.entities), "roles": sorted(who.roles)},
            self._key, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=["HS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iss": False,
                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError as exc:
            raise IdentityError("the signature does not verify") from exc
        check_claims(claims, issuer=self.ISSUER, audience=self.audience, now=self._clock(),
                     leeway=0)
        return Principal(subject=str(claims["sub"]), kind="person",
                         entities=frozenset(claims.get("entities") or ()),
                         roles=_roles(claims.get("roles") or ()),
                         email=claims.get("email"), name=claims.get("name"),
                         issuer=self.ISSUER)


# -- static tokens and the whole ---------------------------------------------------------

_HEX = frozenset("0123456789abcdef")


def _digest_ok(digest: str) -> bool:
    return len(digest) == 64 and set(digest) <= _HEX


class StaffIdentity:
    """Bearer token → :class:`Principal`, whichever issuer made it."""

    def __init__(self, *, tokens: Iterable[StaffTokenSettings] = (),
                 oidc: OidcVerifier | None = None, local: LocalIssuer | None = None,
                 users: LocalUsers | None = None) -> None:
        self._tokens: list[tuple[bytes, Principal]] = []
        for number, t in enumerate(tokens, 1):
            digest = t.sha256.strip().lower()
            if not _digest_ok(digest):
                raise ValueError(f"staff token #{number} ({t.subject}): sha256 is not a hex "
                                 "SHA-256 digest; configure hashlib.sha256(token).hexdigest()")
            self._tokens.append((bytes.fromhex(digest), Principal(
                subject=t.subject, kind="person" if t.kind == "person" else "token",
                entities=frozenset(t.entities), roles=_roles(t.roles), email=t.email)))
        self.oidc, self.local, self.users = oidc, local, users
        if not (self._tokens or oidc or local):
            raise ValueError("no staff token, OpenID Connect provider or local user store")

    def __repr__(self) -> str:
        return (f"StaffIdentity({len(self._tokens)} static token(s), "
                f"oidc={self.oidc.issuer if self.oidc else None}, local={self.local is not None})")

    def known(self, authorization: str | None) -> Principal | None:
        """The caller when that needs no network (a static token, a local token, a provider
        token verified before and not expired); ``None`` when :meth:`principal` must run
        (it may fetch the provider's keys). Raises as :meth:`principal` does otherwise."""
        _, _, token = (authorization or "").partition(" ")
        token = token.strip()
        local = self.local is not None and _issuer_or_none(token) == LocalIssuer.ISSUER
        if (self.oidc is not None and _looks_like_jwt(token) and not local
                and not self.oidc.has_verified(token)):
            return None
        return self.principal(authorization)

    def principal(self, authorization: str | None) -> Principal:
        """The caller; :func:`unauthenticated` (401, IAM-1) unless the token verifies."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated()
        if _looks_like_jwt(token):
            try:
                if self.local is not None and _issuer(token) == LocalIssuer.ISSUER:
                    return self.local.verify(token)
                if self.oidc is not None:
                    return self.oidc.verify(token)
            except IdentityError as exc:
                log.info("staff: token refused: %s", exc)
                raise unauthenticated(str(exc)) from None
            raise unauthenticated("no provider for this token's issuer")
        given = hashlib.sha256(token.encode("utf-8")).digest()
        found: Principal | None = None
        for digest, who in self._tokens:  # every one, always: no early exit to time
            if hmac.compare_digest(given, digest):
                found = who
        if found is None:
            raise unauthenticated()
        return found


def staff_identity(settings: StaffSettings, run_dir: Path) -> StaffIdentity:
    """The issuers the settings configure. With no digest, provider or user file, the
    embedded default's generated token (hub/staff.py) stands for every entity and role;
    the local user store is on whenever its file exists (``hub users add``)."""
    from hub.staff import LOCAL_TOKEN_FILE, _checked, _digests_from_file, _ensure_local_token

    digests = _checked(settings.token_sha256, "HUB_STAFF__TOKEN_SHA256")
    if settings.token_file is not None:
        digests += _digests_from_file(settings.token_file)
    users_file = settings.users_file or run_dir / "staff-users.json"
    users = LocalUsers(users_file) if users_file.exists() else None
    if not digests and not settings.tokens and settings.oidc is None and users is None:
        digests = [hashlib.sha256(_ensure_local_token(run_dir).encode()).hexdigest()]
        logging.getLogger("hub.staff").warning(
            "staff: no HUB_STAFF__TOKEN_SHA256; the staff API token is in %s",
            run_dir / LOCAL_TOKEN_FILE)
    every_role = tuple(r.value for r in Role)
    tokens = [StaffTokenSettings(sha256=d, subject=f"staff-token:{d[:8]}", kind="client",
                                 entities=settings.token_entities, roles=every_role)
              for d in digests] + list(settings.tokens)
    oidc = OidcVerifier(settings.oidc) if settings.oidc is not None else None
    local = (LocalIssuer(run_dir / "staff-signing-key", audience=(
                 settings.oidc.audience if settings.oidc else "procurement-hub"),
                         ttl_s=settings.local_token_ttl_s)
             if users is not None else None)
    return StaffIdentity(tokens=tokens, oidc=oidc, local=local, users=users)
