"""The test PKI of the card, gateway and TSA tests: one directory, generated once."""

from __future__ import annotations

from pathlib import Path

from devkit.pki import DevPki, ensure_pki

PKI_DIR = Path(__file__).resolve().parents[2] / ".run" / "pki-tests"


def shared_pki() -> DevPki:
    """The shared test PKI (idempotent, safe across parallel processes)."""
    return ensure_pki(PKI_DIR)
