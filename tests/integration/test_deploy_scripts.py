"""The deploy scripts work from a clone that only root can enter (the README's promise)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.hubproc import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres user's access only differs "
                    "for root; CI runs as root, where this runs")
def test_postgres_starts_from_a_clone_the_postgres_user_cannot_enter(tmp_path: Path) -> None:
    home = tmp_path / "private"
    home.mkdir(mode=0o700)
    clone = home / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    # The change under test may not be committed yet: run this tree's script in the clone.
    shutil.copy(ROOT / "deploy" / "postgres.sh", clone / "deploy" / "postgres.sh")
    port = _free_port()
    env = {**os.environ, "HUB_PG_PORT": str(port)}
    env.pop("HUB_RUN_DIR", None)
    script = ["bash", str(clone / "deploy" / "postgres.sh")]
    try:
        start = subprocess.run([*script, "start"], env=env, capture_output=True, text=True,
                               timeout=120, check=False)
        assert start.returncode == 0, start.stdout + start.stderr
        where = subprocess.run([*script, "where"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()
        assert where.startswith("/var/lib/postgresql/procurement-hub/"), where
        assert (Path(where).stat().st_mode & 0o777) == 0o700
        engine = sa.create_engine(f"postgresql+psycopg://hub@127.0.0.1:{port}/hub_test")
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
        engine.dispose()
    finally:
        subprocess.run([*script, "wipe"], env=env, capture_output=True, timeout=120,
                       check=False)
    assert not Path(where).exists()
