"""The contract every connector keeps, as importable pytest test classes.

A connector's tests subclass :class:`ConnectorContract` (``class TestMyContract(
ConnectorContract)``), fill in its hooks, and get the six contract tests: the peer down
(transient, retried, then delivered once the peer is back), slow past the timeout
(transient), answering garbage (transient), inside a maintenance window (held: no call
made, ``retry_at`` given) or announcing one (held), a duplicate delivery (one effect), and
a poison input (refused for good, naming a rule, never retried). The hub acts on those
error classes (docs/connectors.md), so a connector that keeps this contract is handled
right by the hub without the hub knowing it.

Needs pytest (tests only) and a reference peer with :class:`~connectors._shared.loopback.
PeerFaults` as ``faults`` (``slow_s``, ``garbage``, ``maintenance_until``, ``requests``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from connectors._shared.errors import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors._shared.loopback import PeerFaults, free_port

__all__ = ["ConnectorContract", "ContractPeer"]

JST_FORMAT = "%Y-%m-%dT%H:%M%z"


class ContractPeer(Protocol):
    """A reference peer as the contract drives it."""

    faults: PeerFaults

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ConnectorContract:
    """The contract tests; subclasses give the hooks below (all required)."""

    timeout_s = 0.5
    """The connector's timeout in these tests; the slow peer waits three times longer."""
    attempts = 3
    """Its retry attempts in these tests."""

    # -- hooks -------------------------------------------------------------------------
    def make_peer(self) -> ContractPeer:
        """A reference peer, not started, ready to answer :meth:`command`."""
        raise NotImplementedError

    def make_connector(self, url: str, **settings: Any) -> Any:
        """The connector aimed at ``url``, with ``settings`` (timeout_s, retry_attempts,
        retry_base_s, maintenance, ...) given to its settings class."""
        raise NotImplementedError

    async def deliver(self, connector: Any, command: Any) -> Any:
        """What the connector's effect does with one command (its entry point)."""
        raise NotImplementedError

    def command(self, peer: ContractPeer, n: int) -> Any:
        """The ``n``-th valid command, with its own idempotency key."""
        raise NotImplementedError

    def poison(self, peer: ContractPeer) -> Any:
        """A command the peer or the connector refuses for good (a rule broken)."""
        raise NotImplementedError

    def effects_on_peer(self, peer: ContractPeer, command: Any) -> int | None:
        """How often the peer applied ``command`` (``None``: the peer keeps no state, the
        operation reads only; two deliveries must then give the same answer)."""
        return None

    def same_answer(self, first: Any, second: Any) -> bool:
        """Whether two answers to the same command say the same (override to ignore
        timestamps)."""
        return bool(first == second)

    def is_refusal(self, answer: Any) -> bool:
        """Whether ``answer`` is the connector's business refusal naming a rule (e.g. a
        ``...Rejected`` payload with violations)."""
        violations = getattr(answer, "violations", None) or ()
        return bool(violations) and all(getattr(v, "rule_id", "") for v in violations)

    # -- fixtures ----------------------------------------------------------------------
    @pytest.fixture
    def peer(self) -> Any:
        peer = self.make_peer()
        peer.start()
        try:
            yield peer
        finally:
            peer.stop()

    @pytest.fixture
    async def connector(self, peer: ContractPeer) -> AsyncIterator[Any]:
        connector = self._connector(peer.url)
        try:
            yield connector
        finally:
            await _aclose(connector)

    def _connector(self, url: str, **settings: Any) -> Any:
        base: dict[str, Any] = {"timeout_s": self.timeout_s, "retry_attempts": self.attempts,
                                "retry_base_s": 0.0, "retry_max_s": 0.0,
                                "breaker_failures": 100}
        return self.make_connector(url, **(base | settings))

    # -- the contract ------------------------------------------------------------------
    async def test_contract_peer_down_is_transient_then_delivered(self) -> None:
        peer = self.make_peer()
        down = self._connector(f"http://127.0.0.1:{free_port()}")
        try:
            with pytest.raises(TransientPeerError) as caught:
                await self.deliver(down, self.command(peer, 1))
            assert caught.value.attempts == self.attempts
            assert down.guard.stats.retries == self.attempts - 1
        finally:
            await _aclose(down)
        peer.start()
        up = self._connector(peer.url)
        try:
            answer = await self.deliver(up, self.command(peer, 1))
            assert answer is not None
            assert not self.is_refusal(answer)
        finally:
            await _aclose(up)
            peer.stop()

    async def test_contract_slow_peer_times_out_as_transient(
            self, peer: ContractPeer, connector: Any) -> None:
        peer.faults.slow_s = self.timeout_s * 3
        before = peer.faults.requests
        with pytest.raises(TransientPeerError):
            await self.deliver(connector, self.command(peer, 2))
        assert peer.faults.requests - before == self.attempts

    async def test_contract_garbage_is_transient(self, peer: ContractPeer,
                                                 connector: Any) -> None:
        peer.faults.garbage = True
        with pytest.raises(TransientPeerError):
            await self.deliver(connector, self.command(peer, 3))
        peer.faults.clear()
        answer = await self.deliver(connector, self.command(peer, 3))
        assert not self.is_refusal(answer)

    async def test_contract_maintenance_window_holds_without_calling(
            self, peer: ContractPeer) -> None:
        now = datetime.now(UTC)
        window = (f"fixed {(now - timedelta(hours=1)).strftime(JST_FORMAT)} "
                  f"{(now + timedelta(hours=1)).strftime(JST_FORMAT)}")
        connector = self._connector(peer.url, maintenance=(window,))
        before = peer.faults.requests
        try:
            with pytest.raises(PeerInMaintenance) as caught:
                await self.deliver(connector, self.command(peer, 4))
        finally:
            await _aclose(connector)
        assert peer.faults.requests == before
        assert caught.value.retry_at > now

    async def test_contract_announced_maintenance_holds(self, peer: ContractPeer,
                                                        connector: Any) -> None:
        peer.faults.maintenance_until = datetime.now(UTC) + timedelta(minutes=30)
        before = peer.faults.requests
        with pytest.raises(PeerInMaintenance):
            await self.deliver(connector, self.command(peer, 5))
        assert peer.faults.requests - before == 1  # held, not retried

    async def test_contract_duplicate_delivery_has_one_effect(
            self, peer: ContractPeer, connector: Any) -> None:
        command = self.command(peer, 6)
        first = await self.deliver(connector, command)
        second = await self.deliver(connector, command)
        effects = self.effects_on_peer(peer, command)
        if effects is not None:
            assert effects == 1
        assert self.same_answer(first, second)

    async def test_contract_poison_is_refused_for_good(self, peer: ContractPeer,
                                                       connector: Any) -> None:
        before = peer.faults.requests
        answer: Any = None
        refused_for_good = False
        try:
            answer = await self.deliver(connector, self.poison(peer))
        except PermanentPeerError as exc:
            refused_for_good = exc.permanent
        assert refused_for_good or self.is_refusal(answer), answer
        assert peer.faults.requests - before <= 1  # never retried


async def _aclose(connector: Any) -> None:
    close = getattr(connector, "aclose", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result
