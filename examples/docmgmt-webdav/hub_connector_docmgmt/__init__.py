"""文書管理システム (the city's document management system) over WebDAV.

Each concluded contract (``ContractConcluded`` on ``proc.contract.events``) is filed as a
folder ``<root>/<案件番号>/`` holding the signed PDFs, the 合意締結証明書 and
``metadata.json`` (case, document, title, conclusion time, each file's name, size and
SHA-256). A connector plugin of procurement-hub that is not part of the hub: installed,
it is discovered through its entry point ``docmgmt-webdav``.
"""

from hub_connector_docmgmt.connector import DocmgmtConnector
from hub_connector_docmgmt.settings import DocmgmtSettings

__all__ = ["DocmgmtConnector", "DocmgmtSettings"]
