"""How a connector says what went wrong with its peer, so the hub knows what to do.

Three answers, and the hub's consumer acts on each differently:

- :class:`TransientPeerError`: the peer did not answer properly (down, slow past
  the timeout, garbage, circuit open). Retried with backoff; after the last retry
  the message goes to its dead-letter topic with ``reason`` and ``history``.
- :class:`PermanentPeerError`: the peer answered "no" for good (invalid data, a
  business rule). Never retried; dead-lettered or turned into a rejection naming
  ``rule_ids`` (docs/rule-ids.md) with Japanese and English text.
- :class:`PeerInMaintenance`: the peer is inside an announced maintenance window
  (WIN-2, WIN-3). Not a failure: the hub holds the work and releases it no earlier
  than ``retry_at``, without counting an attempt. Any exception with a
  ``retry_at`` attribute is read that way.

No message text here may carry a secret, a PIN, a password or a private key:
these errors end up in logs and in dead-letter headers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.rejection import RuleViolation

__all__ = [
    "CircuitOpenError",
    "ConnectorError",
    "PeerInMaintenance",
    "PermanentPeerError",
    "TransientPeerError",
]


class ConnectorError(Exception):
    """Base of every classified connector error.

    ``retryable`` and ``permanent`` tell the hub at a glance; ``detail`` is what a
    dead-letter record shows.
    """

    retryable: bool = False
    permanent: bool = False

    def __init__(self, connector: str, reason: str) -> None:
        super().__init__(f"[{connector}] {reason}")
        self.connector = connector
        self.reason = reason

    @property
    def detail(self) -> str:
        return str(self)


class TransientPeerError(ConnectorError):
    """The peer may answer properly later: retry with backoff, then dead-letter.

    ``attempts`` is how many calls the connector made before giving up, and
    ``history`` the reason of each, oldest first (for the dead-letter record).
    """

    retryable = True

    def __init__(self, connector: str, reason: str, *, attempts: int = 1,
                 history: tuple[str, ...] = ()) -> None:
        super().__init__(connector, reason)
        self.attempts = attempts
        self.history = history or (reason,)

    @property
    def detail(self) -> str:
        """The reason and each attempt inside the connector, for the dead-letter record."""
        if len(self.history) <= 1:
            return str(self)
        return f"{self} [{'; '.join(self.history)}]"


class CircuitOpenError(TransientPeerError):
    """The connector's circuit breaker is open: the peer failed too often just now.

    The call was not made. ``not_before`` is when the breaker lets a trial call
    through; it is a hint, not a hold: unlike :class:`PeerInMaintenance` this
    counts as a failed attempt, so a long outage still ends in the dead-letter
    topic, from where it can be replayed.
    """

    def __init__(self, connector: str, not_before: datetime, *, attempts: int = 1,
                 history: tuple[str, ...] = ()) -> None:
        reason = f"circuit open until {not_before.isoformat()}"
        super().__init__(connector, reason, attempts=attempts, history=(*history, reason))
        self.not_before = not_before


class PermanentPeerError(ConnectorError):
    """The peer refused the request for good: never retried.

    ``violations`` carry the rule IDs and the Japanese and English text for the
    person who has to act; ``rule_ids`` repeats the IDs for routing and logs.
    """

    permanent = True

    def __init__(self, connector: str, reason: str,
                 violations: tuple[RuleViolation, ...] = ()) -> None:
        super().__init__(connector, reason)
        self.violations = violations

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(v.rule_id for v in self.violations)

    @property
    def text_ja(self) -> str:
        """What is wrong and what to do next, in Japanese (empty without violations)."""
        return "\n".join(f"{v.rule_id}: {v.message_ja} {v.next_step_ja}".strip()
                         for v in self.violations)

    @property
    def text_en(self) -> str:
        return "\n".join(f"{v.rule_id}: {v.message_en} {v.next_step_en}".strip()
                         for v in self.violations)


class PeerInMaintenance(ConnectorError):
    """The peer is in a maintenance window until ``until`` (WIN-2, WIN-3).

    The work is held, not failed: the hub retries no earlier than ``retry_at``
    and does not count it as an attempt.
    """

    retryable = True

    def __init__(self, connector: str, until: datetime, window: str = "") -> None:
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        label = f" ({window})" if window else ""
        super().__init__(connector, f"peer in maintenance{label} until {until.isoformat()}")
        self.until = until.astimezone(UTC)
        self.window = window

    @property
    def retry_at(self) -> datetime:
        """When the hub may try again (aware, UTC)."""
        return self.until
