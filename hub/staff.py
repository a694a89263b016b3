"""Static staff tokens: their digests, and the embedded default's generated token.

The staff API's callers are resolved by :mod:`hub.identity` (OpenID Connect, the local
user store, static tokens mapped to principals; docs/identity.md). This module keeps what
static tokens need: the settings hold only their SHA-256 digests
(:class:`hub.settings.StaffSettings`), checked for form without echoing a value (a token
pasted there by mistake must not reach a log), and compared with
:func:`hmac.compare_digest` against every configured one (RFC 6750 for the header).

Embedded default: with no digest, provider or user store configured, one token is
generated into ``RUN_DIR/staff-token`` (mode 0600) and kept across runs; only its path is
logged. :func:`local_token` reads it for local tools (the demo). :class:`StaffAuth` is the
bare yes/no check of a token against the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException

from hub.settings import RUN_DIR, StaffSettings
from schemas.rejection import RuleViolation

__all__ = [
    "DENIED",
    "LOCAL_TOKEN_FILE",
    "StaffAuth",
    "StaffTokenError",
    "local_token",
    "staff_auth",
    "staff_only",
    "token_sha256",
]

log = logging.getLogger(__name__)

LOCAL_TOKEN_FILE = "staff-token"  # noqa: S105 -- a file name, not a token
"""The embedded default's token, under the run directory."""

_HEX = frozenset("0123456789abcdef")

DENIED = RuleViolation(
    rule_id="CON-7",
    message_ja="職員用の API トークンがない、または正しくありません。"
               "契約の保管庫は発注者の職員だけが使えます。",
    message_en="No valid staff API token: the contract archive is for the city's staff only.",
    next_step_ja="発行された職員用トークンを「Authorization: Bearer <トークン>」ヘッダーで"
                 "送ってください。トークンがない場合はハブの管理者に発行を依頼してください。",
    next_step_en="Send your staff API token as 'Authorization: Bearer <token>'; if you have "
                 "none, ask the hub's administrator to issue one.",
)


class StaffTokenError(ValueError):
    """The staff token configuration is unusable; the message never shows a value."""


def token_sha256(token: str) -> str:
    """The hex SHA-256 digest of a staff token: what the settings hold."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class StaffAuth:
    """Checks bearer tokens against the configured digests."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = tuple(bytes.fromhex(d) for d in _checked(digests, "the digests"))
        if not self._digests:
            raise StaffTokenError("no staff token digest configured")

    def __repr__(self) -> str:
        return f"StaffAuth({len(self._digests)} token digest(s))"

    def allows(self, authorization: str | None) -> bool:
        """Whether ``authorization`` is ``Bearer <a configured token>``."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found = False
        for digest in self._digests:  # every one, always: no early exit to time
            found |= hmac.compare_digest(given, digest)
        return found

    def require(self, authorization: Annotated[str | None, Header()] = None) -> None:
        """FastAPI dependency: 401 with the violation unless a staff token is sent."""
        if not self.allows(authorization):
            raise HTTPException(401, detail={"violations": [DENIED.model_dump()]},
                                headers={"WWW-Authenticate": 'Bearer realm="staff"'})


def _checked(digests: Iterable[str], where: str) -> list[str]:
    found = [d.strip().lower() for d in digests if d.strip()]
    for number, digest in enumerate(found, 1):
        if len(digest) != 64 or not set(digest) <= _HEX:
            # Never echo it: a token pasted here by mistake must not reach a log.
            raise StaffTokenError(
                f"staff token digest #{number} in {where} is not a hex SHA-256 digest "
                "(64 hex digits); configure hashlib.sha256(token).hexdigest(), never the token")
    return found


def _digests_from_file(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return _checked((line.split("#", 1)[0] for line in lines), str(path))


def _ensure_local_token(run_dir: Path) -> str:
    """The embedded default's token file: created once (0600), then reused."""
    path = run_dir / LOCAL_TOKEN_FILE
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:  # O_EXCL: two hub processes starting together keep one token
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token + "\n")
    return path.read_text(encoding="utf-8").strip()


def staff_auth(settings: StaffSettings, run_dir: Path = RUN_DIR) -> StaffAuth:
    """The configured digests; with none, the embedded default's local token."""
    digests = _checked(settings.token_sha256, "HUB_STAFF__TOKEN_SHA256")
    if settings.token_file is not None:
        digests += _digests_from_file(settings.token_file)
    if not digests:
        digests = [token_sha256(_ensure_local_token(run_dir))]
        log.warning("staff: no HUB_STAFF__TOKEN_SHA256; the staff API token is in %s",
                    run_dir / LOCAL_TOKEN_FILE)
    return StaffAuth(digests)


def local_token(run_dir: Path = RUN_DIR) -> str:
    """The embedded default's staff token, for local tools such as the demo.

    Created here when the hub has not run yet, so the tool and a hub started later with
    the same run directory and no configured digests agree on it.
    """
    return _ensure_local_token(run_dir)


def staff_only(router: APIRouter, auth: StaffAuth) -> APIRouter:
    """``router`` behind the staff check: every route answers 401 without a staff token."""
    guarded = APIRouter(dependencies=[Depends(auth.require)])
    guarded.include_router(router)
    return guarded
