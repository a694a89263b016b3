"""ContractConcluded -> the files of its folder; WebDAV answers -> results. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from defusedxml import ElementTree

from schemas.cloudsign import ContractConcluded, DocumentRef
from schemas.rejection import RuleViolation

__all__ = ["DOCUMENT_UNUSABLE", "FOLDER_REFUSED", "Filing", "PeerFormatError", "filing_for",
           "multistatus_ok"]

DOCUMENT_UNUSABLE = RuleViolation(
    rule_id="X-DOCMGMT-1",
    message_ja="締結済みの契約書ファイルが見つからないか、保存後に変更されています。",
    message_en="A signed contract file is missing or has changed since it was stored.",
    next_step_ja="電子契約の保管庫で契約書を再検証し、必要ならクラウドサインから取得し直してから"
                 "dlq replay で送り直してください。",
    next_step_en="Re-validate the contract in the archive, fetch it again from CloudSign if "
                 "needed, then send it again with 'hub dlq replay'.",
    field="signed_files",
)

FOLDER_REFUSED = RuleViolation(
    rule_id="X-DOCMGMT-2",
    message_ja="文書管理システムが契約フォルダへの保存を拒否しました（権限または容量）。",
    message_en="The document management system refused to store the contract folder "
               "(permission or space).",
    next_step_ja="文書管理システムの管理者に、ハブの利用者の書込み権限と容量を確認してもらって"
                 "から、dlq replay で送り直してください。",
    next_step_en="Ask the document management system's administrator to check the hub "
                 "user's write permission and quota, then send it again with 'hub dlq replay'.",
)


class PeerFormatError(ValueError):
    """The peer's answer does not have the promised shape (garbage: transient)."""


@dataclass(frozen=True)
class Filing:
    """What goes where: the folder's path and each file's name with its reference."""

    folder: str
    files: tuple[tuple[str, DocumentRef], ...]
    metadata: bytes


def _segment(text: str) -> str:
    return quote(text, safe="")


def filing_for(root: str, event: ContractConcluded) -> Filing:
    """The folder ``/<root>/<案件番号>/`` (each segment percent-encoded) and its files."""
    folder = "/" + "/".join(_segment(p) for p in root.strip("/").split("/") if p) \
        + "/" + _segment(event.case_id) + "/"
    files = tuple((ref.filename, ref) for ref in (*event.signed_files, event.certificate))
    names = [name for name, _ in files]
    if len(set(names)) != len(names) or any(n in ("", ".", "..") or "/" in n for n in names):
        raise ValueError("file names must be distinct plain names")
    metadata = {
        "case_id": event.case_id,
        "document_id": event.document_id,
        "title": event.title,
        "concluded_at": event.concluded_at.isoformat(),
        "files": [{"name": name, "size_bytes": ref.size_bytes, "sha256": ref.sha256,
                   "kind": "certificate" if ref is event.certificate else "signed"}
                  for name, ref in files],
    }
    return Filing(folder, files, json.dumps(metadata, ensure_ascii=False, indent=2,
                                            sort_keys=True).encode("utf-8"))


def multistatus_ok(body: bytes) -> bool:
    """Whether a PROPFIND answer is a WebDAV multistatus (RFC 4918); else garbage."""
    try:
        root = ElementTree.fromstring(body)
    except Exception as exc:
        raise PeerFormatError(f"PROPFIND answer is not XML ({type(exc).__name__})") from None
    if root.tag != "{DAV:}multistatus":
        raise PeerFormatError("PROPFIND answer is not a DAV:multistatus")
    return True
