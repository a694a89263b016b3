"""A SoftHSM2 token holding a test card's key and certificate (the PKCS#11 backend's peer).

The token set-up is the package's (connectors/citysigner/localtoken.py); the tests fix
the SO PIN and label the objects ``card``.
"""

from __future__ import annotations

from pathlib import Path

from connectors.citysigner.localtoken import create_token, softhsm_module
from devkit.pki import Identity

__all__ = ["SO_PIN", "make_token", "softhsm_module"]

SO_PIN = "56785678"


def make_token(directory: Path, creds: Identity, label: str, pin: str) -> str:
    """Create a token ``label`` in ``directory`` holding ``creds``; return the module path.

    SOFTHSM2_CONF is pointed at ``directory`` for this process: SoftHSM reads it when the
    module is initialised, so every token of a test session shares one directory.
    """
    return create_token(directory, creds, token_label=label, key_label="card", pin=pin,
                        so_pin=SO_PIN)
