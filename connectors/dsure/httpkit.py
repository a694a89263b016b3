"""Moved to :mod:`connectors._shared.httpkit`; this name stays for existing imports."""

from connectors._shared.httpkit import *  # noqa: F403
from connectors._shared.httpkit import __all__  # noqa: F401
