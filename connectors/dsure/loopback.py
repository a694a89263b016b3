"""Moved to :mod:`connectors._shared.loopback`; this name stays for existing imports."""

from connectors._shared.loopback import *  # noqa: F403
from connectors._shared.loopback import __all__  # noqa: F401
