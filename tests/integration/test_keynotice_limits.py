"""Crafted 認証キーのお知らせ PDFs (DAT-4): parsed in a child process under CPU, memory and
time limits, off the event loop; every failure is a SUR-1 correction, never a dead letter.

The crafted files are built here: a page whose content stream inflates to ~50 MB of
text-showing operators (about 120 KB on disk: pypdf spends seconds of CPU and hundreds of
MB tokenizing it, then raises LimitReachedError), and a plain decompression bomb.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest

from connectors.application import ApplicationConnector, ApplicationSettings
from connectors.application.peer import ApplicationPeer, PeerAttachment
from connectors.dsure.keynotice import (
    KeyNoticeUnreadable,
    ParseLimits,
    read_key_notice,
    read_key_notice_isolated,
)
from connectors.dsure.noticepdf import render_key_notice

KEY = "Z28YUE4J3Bux"
TOKEN = "app-token"


def _pdf_with_content(stream: bytes) -> bytes:
    """A one-page PDF whose page content is ``stream`` (Flate), with a correct xref."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources "
        b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def token_flood() -> bytes:
    return _pdf_with_content(zlib.compress(b"BT /F1 12 Tf 10 10 Td (a) Tj ET\n" * 1_500_000))


@pytest.fixture(scope="module")
def inflation_bomb() -> bytes:
    return _pdf_with_content(zlib.compress(b"0 0 m " * 16_000_000))


def _good() -> bytes:
    return render_key_notice(contract_number="31072-0001M", auth_key=KEY, work_name="工事",
                             contractor_name="〇〇建設 株式会社", product_ja="契約保証")


def test_every_pypdf_error_is_a_sur1_refusal(inflation_bomb: bytes) -> None:
    with pytest.raises(KeyNoticeUnreadable) as refused:  # pypdf's LimitReachedError inside
        read_key_notice(inflation_bomb)
    assert refused.value.violation.rule_id == "SUR-1"
    assert refused.value.violation.next_step_en


async def test_a_crafted_pdf_hits_the_cpu_limit_in_its_own_process(token_flood: bytes) -> None:
    assert len(token_flood) < 200_000
    parse = asyncio.create_task(read_key_notice_isolated(token_flood, ParseLimits(cpu_s=1)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not parse.done()  # the event loop runs on while the child parses
    with pytest.raises(KeyNoticeUnreadable) as refused:
        await parse
    violation = refused.value.violation
    assert violation.rule_id == "SUR-1"
    assert "too complex" in violation.message_en
    assert "複雑" in violation.message_ja


async def test_the_wall_clock_and_memory_limits_also_end_a_parse(token_flood: bytes,
                                                                  inflation_bomb: bytes) -> None:
    with pytest.raises(KeyNoticeUnreadable, match="too complex"):
        await read_key_notice_isolated(token_flood, ParseLimits(cpu_s=60, timeout_s=0.5))
    with pytest.raises(KeyNoticeUnreadable) as refused:
        await read_key_notice_isolated(inflation_bomb, ParseLimits(memory_mb=64))
    assert refused.value.violation.rule_id == "SUR-1"


async def test_a_genuine_notice_reads_the_same_in_the_child() -> None:
    notice = await read_key_notice_isolated(_good())
    assert (notice.contract_number, notice.auth_key) == ("31072-0001M", KEY)
    with pytest.raises(KeyNoticeUnreadable, match="not a PDF"):
        await read_key_notice_isolated(b"GIF89a")


@pytest.fixture
def peer() -> Iterator[ApplicationPeer]:
    server = ApplicationPeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def connector(peer: ApplicationPeer) -> AsyncIterator[ApplicationConnector]:
    conn = ApplicationConnector(ApplicationSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=5, retry_attempts=1,  # type: ignore[arg-type]
        notice_cpu_s=1))
    yield conn
    await conn.aclose()


async def test_the_application_gets_a_sur1_problem_not_a_dead_letter(
        peer: ApplicationPeer, connector: ApplicationConnector, token_flood: bytes) -> None:
    crafted = PeerAttachment(kind="電子保証に係る認証キーのお知らせ", filename="認証キー.pdf",
                             content=token_flood)
    genuine = PeerAttachment(kind="電子保証に係る認証キーのお知らせ", filename="本物.pdf",
                             content=_good())
    app_id = peer.submit(case_no="R5-0001", procedure="電子契約利用申出書",
                         company="〇〇建設株式会社",
                         answers={"工事名": "工事", "契約締結権限者氏名": "足利 一郎",
                                  "契約締結権限者メールアドレス": "ichiro@example.co.jp"},
                         attachments=(crafted, genuine))
    received = await connector.receive(app_id)
    assert [p.rule_id for p in received.problems] == ["SUR-1"]
    assert "too complex" in received.problems[0].message_en
    (notice,) = received.surety_notices
    assert notice.auth_key == KEY
