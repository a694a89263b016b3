"""D・Sure (保証確認サービス) connector: electronic surety lookups (SUR-1, SUR-2).

D・Sure offers no public API: the connector models the lookup as one HTTP call
(保証契約番号 + 認証キー → the certificate fields of SUR-2) against a reference
service of the project (:mod:`connectors.dsure.peer`), and reads the number and
key out of the 「認証キーのお知らせ」 PDF (:mod:`connectors.dsure.keynotice`).
Modules: settings, adapter (outbound), mapping, connector (entry points),
keynotice (the PDF), peer (reference service, needs the ``peers`` extra).
"""

from connectors.dsure.adapter import NAME, DSureAdapter
from connectors.dsure.connector import DSureConnector
from connectors.dsure.keynotice import KeyNotice, KeyNoticeUnreadable, read_key_notice
from connectors.dsure.settings import DSureSettings

__all__ = [
    "NAME",
    "DSureAdapter",
    "DSureConnector",
    "DSureSettings",
    "KeyNotice",
    "KeyNoticeUnreadable",
    "read_key_notice",
]
