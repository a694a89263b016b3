"""The mail connector's declaration to the hub (entry point ``mail`` of the group
``procurement_hub.connectors``, connectors/_shared/plugin.py)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from connectors.mail.connector import MailConnector
from connectors.mail.effects import effects
from connectors.mail.settings import MailSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="mail",
    description="SMTP: renders and sends the NTF mails",
    settings=MailSettings,
    consumes=(Topics.MAIL_REQUESTS,),
    topics=(Topics.MAIL_REQUESTS, Topics.MAIL_EVENTS),
    build=MailConnector,
    effects=effects,
)
