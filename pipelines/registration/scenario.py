"""The scenario runner: decide one registration command from a JSON file, no Kafka, no
database (``hub rules evaluate FILE.json``; format in docs/rules.md).

A scenario gives the policy, the time, the existing state (qualification rows,
contractors, cards, or a history of earlier commands) and one command; the answer
is the decision (accepted / rejected / needs-confirmation) with its rule IDs, events
and mails, as JSON. A login attempt (``registration.login``) is decided by the card-agent
gateway's own decision and answered with the session it would open. Integrators use it
to see what the hub would answer, and the unit tests use it as their table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipelines.registration.common import Decision, Outcome
from pipelines.registration.login import LOGIN_TYPE, LoginAttempt, decide_login, login_card
from pipelines.registration.policy import (
    PolicyBook,
    PolicyError,
    default_policy_book,
    load_policy_book,
    policy_book_from,
)
from pipelines.registration.rules import COMMANDS, apply_decision, decide
from pipelines.registration.world import (
    Card,
    CardRegistration,
    Contractor,
    RegistrationStatus,
    World,
)
from schemas.qualification import QualificationRecord
from schemas.registration import CardFacts, Contact, Domain, input_violations
from schemas.registry import REGISTRY, Payload, UnknownMessageType
from schemas.rejection import RuleViolation
from schemas.text import trade_name_key

__all__ = ["ScenarioError", "evaluate", "main"]

_COMMAND_TYPES = {cls.message_type for cls in COMMANDS}
_AWARE = TypeAdapter(datetime)


class ScenarioError(ValueError):
    """The scenario file itself is wrong (not the command in it)."""


def _time(value: Any, where: str) -> datetime:
    try:
        at = _AWARE.validate_python(value)
    except ValidationError:
        raise ScenarioError(f"{where}: expected an ISO 8601 time, got {value!r}") from None
    if at.tzinfo is None:
        raise ScenarioError(f"{where}: the time needs a zone, e.g. +09:00")
    return at


def _policy(spec: Any, base: Path | None) -> PolicyBook:
    try:
        if spec in (None, "default"):
            return default_policy_book()
        if isinstance(spec, str):
            path = Path(spec)
            return load_policy_book(path if path.is_absolute() or base is None else base / path)
        if isinstance(spec, Mapping):
            return policy_book_from(spec)
    except (PolicyError, OSError) as exc:
        raise ScenarioError(f"policy: {exc}") from None
    raise ScenarioError("policy: 'default', a TOML file path, or an inline {entity: [...]}")


def _json_model(cls: Any, data: Any) -> Any:
    # Strict models read JSON text (ISO dates, enum values) rather than Python objects.
    return cls.model_validate_json(json.dumps(data, ensure_ascii=False))


def _world(state: Mapping[str, Any]) -> World:
    world = World()
    for row in state.get("qualifications", ()):
        fields = {k: v for k, v in row.items() if k not in ("entity", "domain")}
        world.qualifications[(row["entity"], Domain(row["domain"]), row["user_id"])] = (
            _json_model(QualificationRecord, fields))
    for c in state.get("contractors", ()):
        rep = c.get("representative_contact")
        world.contractors[(c["network"], c["user_id"])] = Contractor(
            network=c["network"], user_id=c["user_id"], company_id=c["company_id"],
            company_name=c["company_name"], company_key=trade_name_key(c["company_name"]),
            corporate_number=c.get("corporate_number"),
            representative_contact=_json_model(Contact, rep) if rep else None)
    for c in state.get("cards", ()):
        facts: CardFacts = _json_model(CardFacts, c["card"])
        regs = {
            (r["entity"], Domain(r["domain"])): CardRegistration(
                RegistrationStatus(r.get("status", "active")), r["department_name"],
                _json_model(Contact, r["contact"]),
                _time(r.get("registered_at", "2020-01-01T00:00:00+09:00"), "registered_at"))
            for r in c.get("registrations", ())}
        world.cards[facts.key] = Card(c["network"], c["user_id"], facts, regs)
    return world


def _command(spec: Any, *, login: bool = False) -> Payload:
    if not isinstance(spec, Mapping) or "type" not in spec or "payload" not in spec:
        raise ScenarioError("command: expected {\"type\": ..., \"payload\": {...}}")
    if spec["type"] not in _COMMAND_TYPES:
        allowed = sorted(_COMMAND_TYPES | ({LOGIN_TYPE} if login else set()))
        raise ScenarioError(f"command: type must be one of {allowed}")
    try:
        cls = REGISTRY.lookup(spec["type"], int(spec.get("version", 1)))
    except UnknownMessageType as exc:
        raise ScenarioError(f"command: {exc}") from None
    result: Payload = _json_model(cls, spec["payload"])
    return result


def _event_json(event: Payload) -> dict[str, Any]:
    return {"type": event.message_type, "payload": event.model_dump(mode="json")}


def _answer(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.outcome.value,
        "rule_ids": sorted({v.rule_id for v in decision.violations}),
        "violations": [v.model_dump(mode="json") for v in decision.violations],
        "warnings": [v.model_dump(mode="json") for v in decision.warnings],
        "events": [_event_json(e) for e in decision.events],
        "mails": [m.model_dump(mode="json") for m in decision.mails],
    }


def _rejected(violations: Sequence[RuleViolation]) -> dict[str, Any]:
    return {"decision": Outcome.REJECTED.value,
            "rule_ids": sorted({v.rule_id for v in violations}),
            "violations": [v.model_dump(mode="json") for v in violations],
            "warnings": [], "events": [], "mails": []}


def _login(world: World, book: PolicyBook, spec: Mapping[str, Any],
           at: datetime) -> dict[str, Any]:
    """A login attempt, decided by the gateway's own decision (``login.decide_login``)."""
    if "payload" not in spec:
        raise ScenarioError("command: expected {\"type\": ..., \"payload\": {...}}")
    try:
        attempt = _json_model(LoginAttempt, spec["payload"])
    except ValidationError as exc:
        return _rejected(input_violations(exc))
    card = world.cards.get(attempt.card.key)
    violations = decide_login(book, login_card(card), attempt, at)
    if violations:
        return _rejected(violations)
    assert card is not None
    contractor = world.contractors.get((card.network, card.user_id))
    return {"decision": Outcome.ACCEPTED.value, "rule_ids": [], "violations": [],
            "warnings": [], "events": [], "mails": [],
            "session": {"network": card.network, "user_id": card.user_id,
                        "company_id": contractor.company_id if contractor else None,
                        "procuring_entity": attempt.procuring_entity,
                        "system": attempt.system.value, "domain": attempt.domain.value}}


def evaluate(scenario: Mapping[str, Any], *, base: Path | None = None) -> dict[str, Any]:
    """Decide the scenario's command; the answer as a JSON-ready dict.

    Raises :class:`ScenarioError` when the scenario is malformed; an invalid command
    is an answer (rejected, with REG-7 / REG-3 violations per field), not an error.
    """
    book = _policy(scenario.get("policy"), base)
    now = _time(scenario.get("now"), "now")
    try:
        world = _world(scenario.get("state", {}))
    except (KeyError, ValueError) as exc:
        raise ScenarioError(f"state: {exc}") from None
    history: Sequence[Any] = scenario.get("history", ())
    for i, step in enumerate(history):
        at = _time(step.get("now", scenario.get("now")), f"history[{i}].now")
        try:
            earlier = decide(world, _command(step), book, at)
        except ValidationError as exc:
            raise ScenarioError(f"history[{i}]: {exc}") from None
        apply_decision(world, earlier, at, book)
    acted_at = _time(scenario["acted_at"], "acted_at") if "acted_at" in scenario else None
    spec = scenario.get("command")
    if isinstance(spec, Mapping) and spec.get("type") == LOGIN_TYPE:
        return _login(world, book, spec, acted_at or now)
    try:
        command = _command(spec, login=True)
    except ValidationError as exc:
        return _rejected(input_violations(exc))
    return _answer(decide(world, command, book, now, acted_at=acted_at))


def main(argv: Sequence[str] | None = None) -> int:
    """``hub rules evaluate FILE.json``: print the decision; exit 0, or 2 on a bad file."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: hub rules evaluate SCENARIO.json", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        scenario = json.loads(path.read_text(encoding="utf-8"))
        answer = evaluate(scenario, base=path.parent)
    except (OSError, json.JSONDecodeError, ScenarioError) as exc:
        print(f"scenario {path}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
