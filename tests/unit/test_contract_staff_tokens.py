"""Staff API tokens (hub/staff.py): digests only in the settings, constant-time checks,
the embedded default's local token (0600, reused, only its path logged) (CON-7)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from hub.settings import StaffSettings
from hub.staff import (
    LOCAL_TOKEN_FILE,
    StaffAuth,
    StaffTokenError,
    local_token,
    staff_auth,
    token_sha256,
)


def test_configured_digests_and_digest_file_both_count(tmp_path: Path) -> None:
    listed = tmp_path / "digests"
    listed.write_text(f"# staff of the contract office\n{token_sha256('b').upper()}  # 花子\n\n")
    auth = staff_auth(StaffSettings(token_sha256=(token_sha256("a"),), token_file=listed),
                      tmp_path / "run")
    assert auth.allows("Bearer a")
    assert auth.allows("bearer b")
    assert auth.allows("Bearer  b ")
    assert not auth.allows("Bearer c")
    assert not auth.allows(None)
    assert not auth.allows("a")
    assert not (tmp_path / "run").exists()  # configured: no local token is made


def test_a_token_configured_as_digest_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(StaffTokenError) as caught:
        staff_auth(StaffSettings(token_sha256=("my-secret-staff-token",)), tmp_path)
    assert "my-secret-staff-token" not in str(caught.value)
    assert "HUB_STAFF__TOKEN_SHA256" in str(caught.value)
    with pytest.raises(StaffTokenError):
        StaffAuth(())


def test_embedded_default_makes_one_private_token_and_logs_only_its_path(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = staff_auth(StaffSettings(), tmp_path)
    path = tmp_path / LOCAL_TOKEN_FILE
    token = local_token(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.allows(f"Bearer {token}")
    assert str(path) in caplog.text
    assert token not in caplog.text
    again = staff_auth(StaffSettings(), tmp_path)  # a restart keeps the token
    assert again.allows(f"Bearer {token}")
    assert local_token(tmp_path) == token


def test_local_token_before_the_hub_ran_is_the_one_it_will_use(tmp_path: Path) -> None:
    token = local_token(tmp_path)
    assert len(token) >= 40
    assert staff_auth(StaffSettings(), tmp_path).allows(f"Bearer {token}")
