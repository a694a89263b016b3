"""Fixture helpers for the real PC/SC stack: vpcd's reader and the virtual card."""

from __future__ import annotations

import time

import pytest
from smartcard.System import readers

from card_agent.errors import NoCardError
from card_agent.pcsc import PcscBackend, PcscSession
from card_agent.virtualcard import READER, seat, wait_reader

__all__ = ["PIN", "READER", "open_card", "require_vpcd", "seat", "wait_reader"]

PIN = "1234"


def require_vpcd() -> None:
    """Fail (not skip) when pcscd with vpcd is not running: deploy/test.sh starts it."""
    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types when pcscd is down
        pytest.fail(f"PC/SC not available ({type(exc).__name__}): run "
                    "`bash deploy/services.d/pcscd.sh start` (deploy/test.sh does this)")
    if READER not in names:
        pytest.fail(f"reader {READER!r} missing (found {names}): vsmartcard-vpcd not loaded; "
                    "run `bash deploy/setup.d/20-card.sh` and restart pcscd")


def open_card(timeout: float = 5.0) -> PcscSession:
    """Open the card in vpcd's reader, waiting for pcscd to notice the insertion."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return PcscBackend().open(READER)
        except NoCardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
