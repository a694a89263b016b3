"""Mail connector (SMTP): renders every NTF notice and sends it through the relay.

Consumes ``Topics.MAIL_REQUESTS`` (MailRequested) through
:meth:`MailConnector.send`; the hub publishes the MailSent to
``Topics.MAIL_EVENTS``. Signed PDFs under 6 MB are attached, larger ones linked
for 10 days (CON-4). The reference peer is an aiosmtpd server (:mod:`.peer`).
"""

from connectors.mail.connector import MailConnector
from connectors.mail.documents import DirectoryDocumentStore, DocumentStore, StoredDocument
from connectors.mail.settings import MailSettings
from connectors.mail.templates import NTF2_NOTICE, required_values

__all__ = [
    "NTF2_NOTICE",
    "DirectoryDocumentStore",
    "DocumentStore",
    "MailConnector",
    "MailSettings",
    "StoredDocument",
    "required_values",
]
