"""Benchmark: pure registration decisions per second (target 50,000/s).

Decides commands against an in-memory World (no database, no Kafka): what the
registration pipeline's rules cost by themselves. The mix, per round:
1. a first 利用者登録 that is accepted (CardRegistered, one propagation, a mail);
2. a registration rejected by REG-1 (the card belongs to another user ID);
3. a registration rejected by REG-3 (unknown user ID, with confusable-character hints);
4. a 利用者変更 that is accepted (CHG-1..4);
5. an ICカード更新 that is accepted (RNW-1..9, revocation, a mail).
Commands are validated once, outside the timing; each decision builds its events
and mails (pydantic models) as the handler would: from validated parts, without
validating them again (schemas.registration.trusted). Single process, one core.
The figures vary ±20% on a shared machine: run it three times and take the median.
Decided one kind after another, each kind is ~20% faster than inside the mix (the
interpreter's caches favour repetition), so the mix is the figure that counts.

    .venv/bin/python benchmarks/bench_rules.py [--seconds 3]
    .venv/bin/python benchmarks/bench_rules.py --instructions [--rounds 1000]   (needs valgrind)

Results: benchmarks/results/rules.json; with ``--instructions``,
benchmarks/results/rules_instructions.json: instructions per decision of the mix, counted by
valgrind's cachegrind (a run of ``--rounds`` rounds less a run of none, so the interpreter's
start and the setup cancel out). Unlike the time, this count does not move with the load of
the machine (two runs of the same code agree within about 1 %), so it is the figure to
compare code before and after.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.rules import apply_decision
from schemas.qualification import QualificationUpdated
from schemas.registry import REGISTRY, Payload

RESULTS = Path(__file__).resolve().parent / "results" / "rules.json"
INSTRUCTIONS = RESULTS.with_name("rules_instructions.json")
NOW = datetime.fromisoformat("2026-11-24T10:00:00+09:00")
ISSUER = "OU=CoreCA,O=eJapan2 Tech Center,C=JP"
TARGET = 50_000


def _card(serial: str, auth: str = "2026-11-24T09:58:00+09:00") -> dict[str, Any]:
    return {"issuer": ISSUER, "serial": serial, "holder_name": "北東 次郎",
            "holder_address": "北東市中央町2丁目3番4号", "holder_organization": "北東組株式会社",
            "not_before": "2025-11-20T00:00:00+09:00", "not_after": "2030-11-20T23:59:59+09:00",
            "authenticated_at": auth}


def _contact(email: str) -> dict[str, Any]:
    return {"contact_name": "営業部", "postal_code": "123-0000",
            "address": "北東市中央町2丁目3番4号", "person_name": "日立 次郎",
            "phone": "044-812-7358", "email": email, "email_confirmation": email}


def _command(kind: str, payload: dict[str, Any]) -> Payload:
    return REGISTRY.lookup(kind, 1).model_validate_json(json.dumps(payload))


def _base(user_id: str) -> dict[str, Any]:
    return {"procuring_entity": "saitama-pref", "system": "e-bid", "domain": "works",
            "user_id": user_id}


def _register(user_id: str, serial: str, trade_name: str = "北東組(株)") -> Payload:
    return _command("registration.card-registration-requested", {
        **_base(user_id), "trade_name": trade_name, "password_verified": True,
        "card": _card(serial), "representative_contact": _contact("main@example.jp"),
        "card_department_contact": _contact("ic@example.jp")})


def world_and_commands() -> tuple[World, list[tuple[str, Payload]]]:
    book, world = default_policy_book(), World()
    rows = [{"user_id": uid, "trade_name": "北東組株式会社",
             "head_office_address": "北東市中央町2丁目3番4号",
             "representative_name": "日立 二郎", "contractor_name": "北東 次郎"}
            for uid in ("1234567890", "2222222222", "3333333333")]
    for entity in ("saitama-pref", "kawagoe-city"):
        apply(world, QualificationUpdated.model_validate_json(json.dumps(
            {"procuring_entity": entity, "domain": "works", "rows": rows})), NOW)
    apply_decision(world, decide(world, _register("2222222222", "200"), book, NOW), NOW)
    commands = [
        ("register-accepted", _register("1234567890", "100")),
        ("register-rejected-REG-1", _register("1234567890", "200")),
        ("register-rejected-REG-3", _register("l234567890", "101")),
        ("change-accepted", _command("registration.contact-change-requested", {
            **_base("2222222222"), "card": _card("200"),
            "card_department_contact": _contact("new@example.jp")})),
        ("renewal-accepted", _command("registration.card-renewal-requested", {
            **_base("2222222222"), "old_card": _card("200"),
            "new_card": _card("201", "2026-11-24T09:59:00+09:00"),
            "apply_to_other_entities": True})),
    ]
    for name, command in commands:
        outcome = decide(world, command, book, NOW).outcome.value
        expected = "rejected" if "rejected" in name else "accepted"
        assert outcome == expected, (name, outcome)
    return world, commands


def run(seconds: float) -> dict[str, Any]:
    book = default_policy_book()
    world, commands = world_and_commands()
    per_kind: dict[str, float] = {}
    for name, command in commands:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 10:
            for _ in range(200):
                decide(world, command, book, NOW)
            n += 200
        per_kind[name] = n / (time.perf_counter() - start)
    rounds: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(200):
            for _, command in commands:
                decide(world, command, book, NOW)
        rounds.append(200 * len(commands) / (time.perf_counter() - start))
    mix = statistics.median(rounds)
    return {
        "benchmark": "registration rules: pure decisions per second",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds": seconds,
        "decisions_per_second_mix_median": round(mix),
        "decisions_per_second_by_kind": {k: round(v) for k, v in per_kind.items()},
        "target": TARGET,
        "meets_target": mix >= TARGET,
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def decide_rounds(rounds: int) -> None:
    """Decide the mix ``rounds`` times, untimed (what ``--instructions`` counts)."""
    book = default_policy_book()
    world, commands = world_and_commands()
    for _ in range(rounds):
        for _, command in commands:
            decide(world, command, book, NOW)


def _instructions(rounds: int) -> int:
    """Instructions valgrind's cachegrind counts for a process deciding ``rounds`` rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        done = subprocess.run(
            # setarch -R: no address randomisation, so hash orders and counts repeat.
            ["setarch", "-R", "valgrind", "--tool=cachegrind", "--cache-sim=no",
             f"--cachegrind-out-file={out}", sys.executable, "-m", "benchmarks.bench_rules",
             "--decide-rounds", str(rounds)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
            env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"})
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if found is None:
            raise RuntimeError("cachegrind printed no instruction count:\n" + done.stderr[-2000:])
        return int(found.group(1).replace(",", ""))


def count_instructions(rounds: int) -> dict[str, Any]:
    _, commands = world_and_commands()
    _instructions(0)  # writes any stale bytecode cache, which would be counted once
    base, full = _instructions(0), _instructions(rounds)
    return {
        "benchmark": "registration rules: instructions per decision of the mix (cachegrind)",
        "python": platform.python_version(),
        "rounds": rounds,
        "decisions": rounds * len(commands),
        "instructions_per_decision": round((full - base) / (rounds * len(commands))),
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per decision under valgrind instead of timing")
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--decide-rounds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decide_rounds is not None:
        decide_rounds(args.decide_rounds)
        return
    if args.instructions:
        result, path = count_instructions(args.rounds), INSTRUCTIONS
    else:
        result, path = run(args.seconds), RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
