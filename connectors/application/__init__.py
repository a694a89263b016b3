"""Online application system (オンライン申請システム) connector (CON-1, CON-2, SUR-1).

Receives forms and attachments (seed 002: 電子契約利用申出書, 前払金請求書,
現場代理人等選任通知書, 工程表, 認証キーのお知らせ, ...) by signed webhook and by
polling, as :class:`schemas.application.ApplicationReceived`, and sends
corrections (補正依頼) back. Modules: settings, adapter (outbound), inbound
(webhook router, poller), mapping, connector (entry points), peer (reference system).
"""

from connectors.application.adapter import NAME, ApplicationAdapter
from connectors.application.connector import PRODUCER, ApplicationConnector, PollBatch
from connectors.application.mapping import message_id_for, surety_checks
from connectors.application.settings import ApplicationSettings

__all__ = [
    "NAME",
    "PRODUCER",
    "ApplicationAdapter",
    "ApplicationConnector",
    "ApplicationSettings",
    "PollBatch",
    "message_id_for",
    "surety_checks",
]
