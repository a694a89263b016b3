"""CloudSign connector: e-contract conclusion through CloudSign's Web API (CON-2 to CON-7).

Create a document with its participants, upload the files, send it; on the
completion webhook (unsigned, so re-read through the API) download the signed
PDF and the 合意締結証明書 into the document store. Modules: settings, adapter
(outbound), inbound (webhook router), mapping, documents (store), connector
(entry points), peer and signing (reference server, ``peers`` extra).
"""

from connectors.cloudsign.adapter import NAME, CloudSignAdapter
from connectors.cloudsign.connector import PRODUCER, CloudSignConnector
from connectors.cloudsign.documents import DocumentStore, DocumentTampered, FileDocumentStore
from connectors.cloudsign.settings import CloudSignSettings

__all__ = [
    "NAME",
    "PRODUCER",
    "CloudSignAdapter",
    "CloudSignConnector",
    "CloudSignSettings",
    "DocumentStore",
    "DocumentTampered",
    "FileDocumentStore",
]
