"""Read 保証契約番号 and 認証キー out of the 「認証キーのお知らせ」 PDF (SUR-1).

The surety company issues 「電子保証にかかる『認証キー』のお知らせ」 as a PDF (seed
002); the contractor uploads it to the online application system. Its 記 section
lists, label then value::

    工 事 名 : ●●●●工事
    受 注 者 名 : 〇〇建設 株式会社
    商品(保証区分): 前払金保証
    保証契約番号: 31072-0001M
    認 証 キー : Z28YUE4J3Bux

Labels are spaced out for layout and may use full-width colons or digits, so the
text is NFKC-normalised and labels are matched with any spacing between their
characters. Anything unreadable is refused with SUR-1 and a next step in Japanese
and English; the key itself never appears in an error.

The PDF comes from outside, and pypdf can spend seconds of CPU and hundreds of MB on a
small crafted file (a content stream of millions of tokens, a decompression bomb). The
hub therefore parses with :func:`read_key_notice_isolated`: in a child process of its
own (``python -m connectors.dsure.keynotice``) with a CPU-time limit (RLIMIT_CPU), an
address-space limit (RLIMIT_AS) and a wall-clock timeout, never on the event loop, at most
:data:`MAX_PARALLEL_PARSES` at once. Every pypdf error, limit hit or timeout is a SUR-1
correction for the contractor, never a dead letter (DAT-4, docs/security.md).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from schemas.rejection import RuleViolation
from schemas.surety import AuthKey, ContractNumber, SuretyProduct

__all__ = ["MAX_PARALLEL_PARSES", "KeyNotice", "KeyNoticeUnreadable", "ParseLimits",
           "read_key_notice", "read_key_notice_isolated"]

MAX_PAGES = 5
MAX_PARALLEL_PARSES = 2
"""Child processes parsing at once in one hub process: an application with many
attachments, or many applications, wait their turn instead of taking every core."""
_NUMBER = r"([0-9]{5}-[0-9A-Z]{4,8})"
_KEY = r"([0-9A-Za-z]{8,32})"
_PRODUCTS = {"前払金保証": SuretyProduct.ADVANCE_PAYMENT, "契約保証": SuretyProduct.PERFORMANCE}
_NEXT_JA = ("保証会社のサービス（ネットデスク）から「認証キーのお知らせ」PDFを"
            "改めてダウンロードし、加工せずにオンライン申請システムで再提出してください。")
_NEXT_EN = ("Download the 認証キーのお知らせ PDF again from the surety company's service "
            "(Net Desk) and submit it unchanged through the online application system.")

# pypdf reports damaged-but-readable files at WARNING; what matters is our verdict.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class KeyNotice(BaseModel):
    """What the notice says. ``auth_key`` is a credential: never in a repr or a log."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    contract_number: ContractNumber
    auth_key: AuthKey
    product: SuretyProduct | None = None
    work_name: str | None = Field(default=None, max_length=200)
    contractor_name: str | None = Field(default=None, max_length=200)


class KeyNoticeUnreadable(ValueError):
    """The upload is not a readable 認証キーのお知らせ (SUR-1)."""

    def __init__(self, reason_ja: str, reason_en: str) -> None:
        super().__init__(f"SUR-1: {reason_en}")
        self.violation = RuleViolation(
            rule_id="SUR-1",
            message_ja=reason_ja,
            message_en=reason_en,
            next_step_ja=_NEXT_JA,
            next_step_en=_NEXT_EN,
            field="認証キーのお知らせ",
        )


def _label(text: str) -> str:
    """A label regex that allows spacing between its characters (工 事 名)."""
    return r"\s*".join(re.escape(ch) for ch in text) + r"\s*[:：]\s*"


def _extract_text(pdf: bytes, max_bytes: int) -> str:
    if len(pdf) > max_bytes:
        raise KeyNoticeUnreadable(
            f"ファイルが大きすぎます（{len(pdf):,} バイト、上限 {max_bytes:,} バイト）。",
            f"The file is too large ({len(pdf):,} bytes, limit {max_bytes:,}).",
        )
    if not pdf.startswith(b"%PDF-"):
        raise KeyNoticeUnreadable("PDF ファイルではありません。", "The file is not a PDF.")
    try:
        reader = PdfReader(io.BytesIO(pdf))
        if reader.is_encrypted:
            raise KeyNoticeUnreadable("PDF にパスワードが設定されています。",
                                      "The PDF is password-protected.")
        pages = reader.pages[:MAX_PAGES]
        return "\n".join(page.extract_text() or "" for page in pages)
    except KeyNoticeUnreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, ZeroDivisionError, OverflowError, AssertionError, MemoryError):
        # Whatever pypdf raises on a malformed or hostile file: the contractor's PDF is
        # not a readable notice (SUR-1), not the hub's failure.
        raise _damaged() from None


def _damaged() -> KeyNoticeUnreadable:
    return KeyNoticeUnreadable("PDF を読み取れません（破損している可能性があります）。",
                               "The PDF cannot be read (it may be damaged).")


def _too_complex() -> KeyNoticeUnreadable:
    return KeyNoticeUnreadable(
        "PDF の構造が複雑すぎるため読み取りを中止しました（処理時間またはメモリの上限）。",
        "Reading the PDF was stopped: its structure is too complex (time or memory limit).")


def _value(text: str, label: str, pattern: str = r"(.+?)\s*$") -> str | None:
    match = re.search(_label(label) + pattern, text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def read_key_notice(pdf: bytes, *, max_bytes: int = 5 * 1024 * 1024) -> KeyNotice:
    """The number, key and context fields of one notice, or :class:`KeyNoticeUnreadable`."""
    text = unicodedata.normalize("NFKC", _extract_text(pdf, max_bytes))
    number = _value(text, "保証契約番号", _NUMBER)
    if number is None:
        raise KeyNoticeUnreadable(
            "「保証契約番号」が見つかりません。「認証キーのお知らせ」の PDF か確認してください。",
            "No 保証契約番号 (guarantee contract number) was found. "
            "Check that this is the 認証キーのお知らせ PDF.",
        )
    key = _value(text, "認証キー", _KEY)
    if key is None:
        raise KeyNoticeUnreadable("「認証キー」が見つかりません。",
                                  "No 認証キー (authentication key) was found.")
    product_text = _value(text, "商品(保証区分)")
    return KeyNotice(
        contract_number=number,
        auth_key=key,
        product=_PRODUCTS.get(product_text or ""),
        work_name=_value(text, "工事名"),
        contractor_name=_value(text, "受注者名"),
    )


@dataclass(frozen=True)
class ParseLimits:
    """What one parse may use: CPU seconds, address space (MB), wall-clock seconds."""

    cpu_s: int = 5
    memory_mb: int = 256
    timeout_s: float = 20.0
    max_bytes: int = 5 * 1024 * 1024


_parses: asyncio.Semaphore | None = None
_parses_loop: asyncio.AbstractEventLoop | None = None


def _semaphore() -> asyncio.Semaphore:
    global _parses, _parses_loop
    loop = asyncio.get_running_loop()
    if _parses is None or _parses_loop is not loop:
        _parses, _parses_loop = asyncio.Semaphore(MAX_PARALLEL_PARSES), loop
    return _parses


async def read_key_notice_isolated(pdf: bytes, limits: ParseLimits | None = None
                                   ) -> KeyNotice:
    """:func:`read_key_notice` in a child process under ``limits``; every failure of the
    parse (pypdf error, CPU or memory limit, timeout, crash) is :class:`KeyNoticeUnreadable`.
    """
    lim = limits or ParseLimits()
    if len(pdf) > lim.max_bytes or not pdf.startswith(b"%PDF-"):
        return read_key_notice(pdf, max_bytes=lim.max_bytes)  # refused before any parsing
    async with _semaphore():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connectors.dsure.keynotice", str(lim.cpu_s),
            str(lim.memory_mb), str(lim.max_bytes),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(pdf), lim.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise _too_complex() from None
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
    if proc.returncode != 0:  # killed by RLIMIT_CPU (SIGXCPU/SIGKILL) or out of memory
        raise _too_complex()
    try:
        answer = json.loads(out)
        if "unreadable" in answer:
            ja, en = answer["unreadable"]
            raise KeyNoticeUnreadable(str(ja), str(en))
        return KeyNotice.model_validate_json(json.dumps(answer["notice"]), strict=False)
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        if isinstance(exc, KeyNoticeUnreadable):
            raise
        raise _damaged() from None


def _child(argv: list[str]) -> int:
    """The child's side: limits first, then one parse; the answer as JSON on stdout."""
    import resource

    cpu_s, memory_mb, max_bytes = int(argv[0]), int(argv[1]), int(argv[2])
    # The limit is for the parse: the interpreter's start-up has already used some CPU.
    used = resource.getrusage(resource.RUSAGE_SELF)
    budget = int(used.ru_utime + used.ru_stime) + 1 + cpu_s
    resource.setrlimit(resource.RLIMIT_CPU, (budget, budget + 1))
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pdf = sys.stdin.buffer.read()
    try:
        notice = read_key_notice(pdf, max_bytes=max_bytes)
        answer: dict[str, object] = {"notice": notice.model_dump(mode="python")}
    except KeyNoticeUnreadable as exc:
        answer = {"unreadable": [exc.violation.message_ja, exc.violation.message_en]}
    except MemoryError:
        return 3
    # The key crosses the pipe in clear: only to the parent, never to a log or a file.
    sys.stdout.write(json.dumps(answer, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
