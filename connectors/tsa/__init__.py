"""TSA connector: RFC 3161 timestamps over HTTP for the card agent and the city's signer.

Same shape as every connector (docs/connectors.md): :mod:`.settings` (``HUB_TSA_*``:
URL, trust roots, maintenance windows WIN-3, retry and breaker), :mod:`.adapter` (HTTP
transport, error classification), :mod:`.verify` (token checks: imprint, signature, TSA
chain), :mod:`.connector` (:class:`~.connector.TsaConnector` and its pyHanko
``TimeStamper``), :mod:`.peer` (the reference TSA: OpenSSL ``ts`` behind HTTP).
"""

from connectors.tsa.connector import HubTimeStamper, TsaConnector
from connectors.tsa.settings import TsaSettings
from connectors.tsa.verify import TokenRejectedError, verify_token

__all__ = ["HubTimeStamper", "TokenRejectedError", "TsaConnector", "TsaSettings", "verify_token"]
