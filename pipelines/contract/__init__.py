"""電子契約の締結: the hub's contract conclusion process manager and archive (CON-1 … CON-7).

Pure rules (:mod:`.rules`, texts in :mod:`.texts`, mails in :mod:`.mails`) over a
:class:`~.state.CaseState`; the tables (:mod:`.models`) and store (:mod:`.store`); the
Kafka handler (:mod:`.handlers`); the archive queries, 合意締結証明書 and re-validation
(:mod:`.archive`). What needs the hub (scheduled jobs, HTTP routers, the consumers it
runs) lives in :mod:`hub.contract`.
"""

from pipelines.contract.rules import Decision, decide
from pipelines.contract.state import CaseState, ContractPolicy

__all__ = ["CaseState", "ContractPolicy", "Decision", "decide"]
