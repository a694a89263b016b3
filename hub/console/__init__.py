"""The staff console (``/console``): server-rendered pages over the staff's services."""

from hub.console.app import ConsoleConfig, console_router

__all__ = ["ConsoleConfig", "console_router"]
