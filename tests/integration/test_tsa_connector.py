"""TSA connector against a real RFC 3161 server (OpenSSL ts behind HTTP): tokens are
checked (imprint, nonce, TSA chain), transient failures retried, WIN-3 windows hold work.

Every token the connector verifies is also verified by ``openssl ts -verify`` against
the same roots (tests/support/outside_validators.py): a token one accepts and the other
refuses fails the test."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from asn1crypto import tsp

from connectors._shared.errors import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors.tsa import TsaConnector, TsaSettings, verify_token
from connectors.tsa.adapter import TsaAdapter
from connectors.tsa.peer import ReferenceTsa
from connectors.tsa.verify import TokenRejectedError
from devkit.pki import DevPki
from tests.card.pki import shared_pki
from tests.support.outside_validators import openssl_ts_verify

pytestmark = pytest.mark.tsa


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(autouse=True)
def outside_verdicts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The connector's token check, judged again by openssl each time it runs."""
    import connectors.tsa.connector as tsa_connector

    verdicts: list[bool] = []

    async def judged(token: Any, digest: bytes, algorithm: str, roots: Any) -> dt.datetime:
        try:
            when = await verify_token(token, digest, algorithm, roots)
        except Exception:
            ok, output = openssl_ts_verify(token.dump(), digest, roots)
            assert not ok, f"the connector refused a token openssl accepts: {output}"
            verdicts.append(False)
            raise
        ok, output = openssl_ts_verify(token.dump(), digest, roots)
        assert ok, f"the connector accepted a token openssl refuses: {output}"
        verdicts.append(True)
        return when

    monkeypatch.setattr(tsa_connector, "verify_token", judged)
    return verdicts


@pytest.fixture
def tsa(pki: DevPki) -> Iterator[ReferenceTsa]:
    with ReferenceTsa(pki) as server:
        yield server


def _connector(tsa: ReferenceTsa, pki: DevPki, **extra: object) -> TsaConnector:
    settings = TsaSettings(url=tsa.url, retry_base_s=0.0, retry_max_s=0.0, **extra)  # type: ignore[arg-type]
    return TsaConnector(settings, pki.trust_roots)


async def test_token_is_issued_and_verified(tsa: ReferenceTsa, pki: DevPki,
                                           outside_verdicts: list[bool]) -> None:
    digest = hashlib.sha256(b"contract.pdf").digest()
    token = await _connector(tsa, pki).timestamp(digest, "sha256")
    assert outside_verdicts == [True]  # openssl ts -verify agreed
    ok, output = openssl_ts_verify(token.dump(), hashlib.sha256(b"edited").digest(),
                                   pki.trust_roots)
    assert not ok, output  # and refuses it for another document
    info = token["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["message_imprint"]["hashed_message"].native == digest
    when = await verify_token(token, digest, "sha256", pki.trust_roots)
    assert abs(when - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert tsa.requests_served == 1


async def test_the_verified_token_is_handed_on_unparsed(tsa: ReferenceTsa,
                                                        pki: DevPki) -> None:
    # pyHanko dumps and copies the token many times while signing: a fully parsed one is
    # re-encoded level by level each time (card agent's signature: 1,256 -> 174 ms CPU).
    connector = _connector(tsa, pki)
    answers: list[bytes] = []
    post = connector.adapter.post

    async def keep(query: bytes) -> bytes:
        answers.append(await post(query))
        return answers[-1]

    connector.adapter.post = keep  # type: ignore[method-assign]
    token = await connector.timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert token.children is None
    assert token["content_type"].native == "signed_data"
    # the TSA's own bytes, not a re-encoding of the parsed, verified token (~45 ms CPU)
    assert token.dump() in answers[0]


async def test_a_cut_answer_is_retried_then_transient(tsa: ReferenceTsa, pki: DevPki) -> None:
    query = tsp.TimeStampReq({"version": 1, "cert_req": True, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\0" * 32}})
    answer = await TsaAdapter("tsa", tsa.url, 5.0).post(query.dump())
    with _BadTsa(body=answer[: len(answer) - 100]) as cut:
        settings = TsaSettings(url=cut.url, retry_attempts=2, retry_base_s=0.0,
                               retry_max_s=0.0)
        with pytest.raises(TransientPeerError, match="not an RFC 3161") as caught:
            await TsaConnector(settings, pki.trust_roots).timestamp(b"\0" * 32, "sha256")
    assert caught.value.attempts == 2


async def test_the_tls_context_is_made_once_per_process(tsa: ReferenceTsa, pki: DevPki,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # loading the CA bundle is ~18 ms CPU: most of a timestamp's when made per call
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    for _ in range(3):  # the card agent's driver makes a connector per case
        await _connector(tsa, pki).timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert len(made) <= 1  # none when an earlier test made the process's one
    assert tsa.requests_served == 3


async def test_token_for_another_digest_is_rejected(tsa: ReferenceTsa, pki: DevPki) -> None:
    token = await _connector(tsa, pki).timestamp(hashlib.sha256(b"a").digest(), "sha256")
    with pytest.raises(TokenRejectedError, match="imprint"):
        await verify_token(token, hashlib.sha256(b"b").digest(), "sha256", pki.trust_roots)


async def test_token_with_another_nonce_is_refused(tsa: ReferenceTsa, pki: DevPki) -> None:
    tsa.wrong_nonce = True
    with pytest.raises(PermanentPeerError, match="nonce"):
        await _connector(tsa, pki).timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert tsa.requests_served == 1  # a token was issued, and refused by the client


async def test_tsa_outside_the_trust_roots_is_refused(tsa: ReferenceTsa, pki: DevPki,
                                                      outside_verdicts: list[bool]) -> None:
    settings = TsaSettings(url=tsa.url)
    connector = TsaConnector(settings, [pki.other_root.certificate])
    with pytest.raises(PermanentPeerError, match="trusted root"):
        await connector.timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert outside_verdicts == [False]  # openssl refused it too


async def test_transient_failure_is_retried(tsa: ReferenceTsa, pki: DevPki) -> None:
    tsa.fail_next = 2
    connector = _connector(tsa, pki, retry_attempts=3)
    await connector.timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert connector.guard.stats.retries == 2
    assert tsa.requests_served == 1


async def test_down_tsa_is_a_transient_error_after_the_retries(pki: DevPki) -> None:
    with ReferenceTsa(pki) as server:
        url = server.url
    settings = TsaSettings(url=url, retry_attempts=2, retry_base_s=0.0, retry_max_s=0.0)
    with pytest.raises(TransientPeerError) as caught:
        await TsaConnector(settings, pki.trust_roots).timestamp(b"\0" * 32, "sha256")
    assert caught.value.attempts == 2


async def test_maintenance_window_holds_work_without_calling_the_tsa(
    tsa: ReferenceTsa, pki: DevPki
) -> None:
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    window = f"fixed {(now - hour).isoformat()} {(now + hour).isoformat()}"
    connector = _connector(tsa, pki, maintenance=(window,))
    with pytest.raises(PeerInMaintenance) as held:
        await connector.timestamp(hashlib.sha256(b"x").digest(), "sha256")
    assert held.value.retry_at > now  # WIN-3: resume after the window, not failed
    assert tsa.requests_served == 0
    health = await connector.health()
    assert health.state == "maintenance"


async def test_health_is_up_with_a_verified_token(tsa: ReferenceTsa, pki: DevPki) -> None:
    health = await _connector(tsa, pki).health()
    assert health.ok, health.detail


class _BadTsa:
    """A raw HTTP peer that answers too slowly or with garbage (not a TSA at all)."""

    def __init__(self, *, delay_s: float = 0.0, body: bytes = b"") -> None:
        import http.server
        import threading
        import time

        delay, answer = delay_s, body

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _BadTsa:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_slow_tsa_past_the_timeout_is_transient_after_the_retries(pki: DevPki) -> None:
    with _BadTsa(delay_s=1.0) as slow:
        settings = TsaSettings(url=slow.url, timeout_s=0.2, retry_attempts=2, retry_base_s=0.0,
                               retry_max_s=0.0)
        with pytest.raises(TransientPeerError, match="timeout") as caught:
            await TsaConnector(settings, pki.trust_roots).timestamp(b"\0" * 32, "sha256")
    assert caught.value.attempts == 2


async def test_garbage_answer_is_retried_then_transient(pki: DevPki) -> None:
    with _BadTsa(body=b"<html>proxy error</html>") as garbage:
        settings = TsaSettings(url=garbage.url, retry_attempts=2, retry_base_s=0.0,
                               retry_max_s=0.0)
        with pytest.raises(TransientPeerError, match="not an RFC 3161") as caught:
            await TsaConnector(settings, pki.trust_roots).timestamp(b"\0" * 32, "sha256")
    assert caught.value.attempts == 2
