"""The ``hub`` command.

    hub demo                           the main job on the embedded default, with a sample case
    hub run [--bootstrap MOD:FUNC]     the workers (consumers, outbox relay, retries, HTTP)
    hub peers                          the reference peers (SMTP, SOAP ERP, D・Sure, TSA, ...)
    hub topics apply|list              topics of schemas/topics.py on the cluster
    hub db upgrade|current             Alembic migrations
    hub dlq list|show|replay           dead letters (a replay is written to the audit trail)
    hub audit list|verify|prune        the audit trail (docs/identity.md)
    hub users add NAME ...             the built-in local user store's staff
    hub docs [--out DIR]               AsyncAPI document and JSON Schemas
    hub schemas check|release NAME     message schemas against the last release (SCH-1)
    hub connectors list|status|pause|resume|restart [NAME]   a running hub's connectors
    hub connector new NAME [--dir DIR]  a new connector package (plugin) to start from
    hub rules evaluate FILE.json       a registration scenario's decision (docs/rules.md)
    hub propagate                      the REG-9 propagation batch, once
    hub qualifications import FILE     資格審査情報 from CSV
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub.settings import Settings, load_settings

__all__ = ["main"]


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from connectors._shared.files import ensure_run_dir
    from hub import tracing
    from hub.bootstrap import load_wiring
    from hub.logs import setup_logging
    from hub.production import EXIT_CONFIG, demo_banner, production_problems, refusal_text
    from hub.runtime import Hub
    from hub.settings import RUN_DIR

    problems = production_problems(settings)
    if settings.profile == "production" and problems:
        print(refusal_text(problems), file=sys.stderr, flush=True)
        return EXIT_CONFIG
    ensure_run_dir(RUN_DIR)  # the embedded default's PKI, token and database live there
    setup_logging(settings.log_level, settings.log_format)
    if problems:
        logging.getLogger("hub.production").warning(
            "%s", demo_banner(settings.profile, problems))
    # Before the wiring: the HTTP clients its connectors make are then traced from the start.
    tracing.configure(settings.tracing, instance=settings.producer_name)
    wiring = load_wiring(args.bootstrap, settings)
    hub = Hub(settings, wiring.consumers, engine=wiring.engine, jobs=wiring.jobs,
              http_routers=wiring.routers, publisher=wiring.publisher, closers=wiring.closers,
              connectors=wiring.connectors)
    if wiring.plugins is not None:
        from hub.control import mount
        from hub.staff import staff_auth

        mount(hub.http, list(wiring.plugins.running.values()), lambda: hub.runtimes,
              staff_auth(settings.staff, RUN_DIR))
    asyncio.run(hub.run_until_signalled())
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from hub.demo import run_demo
    from hub.logs import setup_logging
    from hub.production import demo_banner, production_problems

    setup_logging("WARNING", "text")
    print(demo_banner(settings.profile, production_problems(settings)), flush=True)
    return asyncio.run(run_demo(settings))


def _cmd_peers(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import time

    from hub.peers import LocalPeers
    from hub.settings import RUN_DIR

    peers = LocalPeers(RUN_DIR / "peers")
    peers.start()
    print("\n".join(peers.describe()), flush=True)
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop:
        time.sleep(0.5)
    peers.stop()
    return 0


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from hub.plugins import all_topics
    from hub.topics import TopicsError, apply_topics, topic_plans

    topics = all_topics()
    if args.action == "list":
        plans = {p.name: p for p in topic_plans(settings.kafka, topics)}
        _print([{"topic": t.name, "dlq": t.dlq, "partitions": plans[t.name].partitions,
                 "key": t.key.value, "retention_days": plans[t.name].retention_ms / 86_400_000,
                 "dlq_retention_days": plans[t.dlq].retention_ms / 86_400_000,
                 "description": t.description}
                for t in topics])
        return 0
    try:
        report = asyncio.run(apply_topics(settings.kafka, topics))
    except TopicsError as exc:
        print(f"hub topics apply: {exc}", file=sys.stderr)
        return 1
    _print({"created": report.created, "grown": report.grown,
            "unchanged": len(report.unchanged), "replication": report.replication,
            "under_replicated": report.under_replicated})
    return 0


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from hub.db import create_db_engine
    from hub.migrations import current_revision, upgrade

    engine = create_db_engine(settings.database_url.get_secret_value())
    if args.action == "upgrade":
        upgrade(engine)
    print(current_revision(engine))
    return 0


def _dlq_topics(args: argparse.Namespace) -> list[str]:
    from hub.plugins import all_topics
    from schemas.topics import DLQ_SUFFIX

    if args.topic:
        return [t if t.endswith(DLQ_SUFFIX) else t + DLQ_SUFFIX for t in args.topic]
    return [t.dlq for t in all_topics()]


def _with_stored_values(settings: Settings, letters: Sequence[Any]) -> list[dict[str, Any]]:
    """Details of dead letters; a value stored by reference is read from the database."""
    out = [d.details() for d in letters]
    if not any("stored_by_reference" in d for d in out):
        return out
    from hub.claimcheck import stored_value
    from hub.db import create_db_engine

    engine = create_db_engine(settings.database_url.get_secret_value())
    try:
        for details in out:
            if (ref := details.get("stored_by_reference")) is not None:
                value = stored_value(engine, ref["ref"])
                details["value"] = ("(no longer stored: pruned after its retention)"
                                    if value is None
                                    else value.decode("utf-8", "replace")[:4000])
    finally:
        engine.dispose()
    return out


def _cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from hub.dlq import read_dead_letters, replay

    letters = asyncio.run(read_dead_letters(settings, _dlq_topics(args)))
    if args.action == "list":
        _print([d.summary() for d in letters])
        return 0
    chosen = letters if getattr(args, "all", False) else [d for d in letters if d.ref in args.ref]
    missing = set(getattr(args, "ref", []) or ()) - {d.ref for d in chosen}
    if missing:
        print(f"hub dlq: no dead letter {', '.join(sorted(missing))} "
              "(refs look like proc.mail.requests.dlq/0/12; see `hub dlq list`)", file=sys.stderr)
        return 2
    if args.action == "show":
        _print(_with_stored_values(settings, chosen))
        return 0
    count = asyncio.run(replay(settings, chosen, on_sent=_audited_replay(settings)))
    _print({"replayed": count, "refs": [d.ref for d in chosen]})
    return 0


def _operator() -> str:
    """Who runs a command-line step: the OS account, as the audit trail names it."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _audited_replay(settings: Settings) -> Any:
    """One audit row per replayed dead letter, written once it is back on its topic."""
    import orjson
    from sqlmodel import Session

    from hub import audit
    from hub.db import create_db_engine
    from hub.migrations import upgrade
    from schemas.envelope import utc_now

    engine = create_db_engine(settings.database_url.get_secret_value())
    if settings.migrate_on_start:  # as `hub run` does: the audit trail's table may be new
        upgrade(engine)

    def sent(letter: Any) -> None:
        try:
            entity = str(orjson.loads(letter.value or b"{}").get("procuring_entity") or "")
        except (orjson.JSONDecodeError, AttributeError):
            entity = ""
        with Session(engine) as tx, tx.begin():
            audit.record(tx, actor=_operator(), actor_kind="operator", role="admin",
                         entity=entity, action="dlq.replay", target=letter.ref,
                         at=utc_now(), client="cli", detail=letter.original_topic)

    return sent


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime, timedelta

    from sqlmodel import Session

    from hub import audit
    from hub.db import create_db_engine
    from schemas.envelope import utc_now

    engine = create_db_engine(settings.database_url.get_secret_value())
    with Session(engine) as db:
        if args.action == "verify":
            report = audit.verify(db)
            _print({"ok": report.ok, "checked": report.checked, "broken_id": report.broken_id,
                    "reason": report.reason, "last_hash": report.last_hash})
            if not report.ok:
                print(f"hub audit verify: {report.reason}", file=sys.stderr)
            return 0 if report.ok else 1
        if args.action == "prune":
            with db.begin():
                removed = audit.prune(db, now=utc_now(), actor=_operator(), retention=timedelta(
                    days=args.days or settings.staff.audit_retention_days))
            _print({"removed": removed})
            return 0
        since = datetime.fromisoformat(args.since) if args.since else None
        found = audit.rows(db, entities=args.entity or None, since=since, limit=args.limit)
        _print([r.model_dump() for r in found])
    return 0


def _cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from hub.identity import LocalUsers
    from hub.settings import RUN_DIR

    path = settings.staff.users_file or RUN_DIR / "staff-users.json"
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    if len(password) < 12:
        print("hub users add: the password needs at least 12 characters", file=sys.stderr)
        return 2
    try:
        LocalUsers(path).add(args.name, password, email=args.email, entities=args.entity,
                             roles=args.role, name=args.display_name)
    except ValueError as exc:
        print(f"hub users add: {exc}", file=sys.stderr)
        return 2
    _print({"user": args.name, "entities": sorted(set(args.entity)),
            "roles": sorted(set(args.role)), "file": str(path)})
    return 0


def _cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    from hub.bootstrap import load_wiring
    from hub.broker import asyncapi
    from hub.schema_export import export_json_schemas

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wiring = load_wiring(args.bootstrap, settings)
    spec = asyncapi(wiring.consumers, version="0.1.0").to_specification()
    (out / "asyncapi.json").write_text(spec.to_json(), encoding="utf-8")
    written = export_json_schemas(out / "schemas")
    print(f"wrote {out / 'asyncapi.json'} and {len(written)} JSON Schemas in {out / 'schemas'}")
    return 0


def _cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    from hub import schema_compat

    released_dir = Path(args.released) if args.released else schema_compat.RELEASED_DIR
    if args.action == "release":
        if not args.name:
            print("hub schemas release: name the release (e.g. 0.2.0)", file=sys.stderr)
            return 2
        target = schema_compat.release(args.name, released_dir)
        print(f"wrote release {args.name}: {len(list(target.glob('*.json')))} schemas in {target}")
        return 0
    latest = schema_compat.latest_release(released_dir)
    if latest is None:
        print(f"SCH-1: no released schemas in {released_dir}; run `hub schemas release NAME` "
              "first / リリース済みのスキーマがありません。", file=sys.stderr)
        return 1
    problems = schema_compat.check(latest)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} backward-incompatible change(s) since release {latest.name}. "
              "Make the change additive (a new optional field), or bump the message's "
              "schema_version (@message(type, N + 1)).\n"
              f"リリース {latest.name} から後方互換性のない変更が {len(problems)} 件あります。"
              "任意項目の追加にとどめるか、メッセージの版 (schema_version) を上げてください。",
              file=sys.stderr)
        return 1
    print(f"schemas compatible with release {latest.name}")
    return 0


def _cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.registration.scenario import main as evaluate

    return evaluate([args.file])


def _cmd_propagate(args: argparse.Namespace, settings: Settings) -> int:
    from hub.bootstrap import propagation_job
    from hub.db import create_db_engine

    engine = create_db_engine(settings.database_url.get_secret_value())

    async def once() -> Any:
        return await propagation_job(0).run(engine)

    report = asyncio.run(once())
    _print({"done": report.done, "skipped": report.skipped, "failed": report.failed,
            "held": report.held,
            "events": [type(e).message_type for e in report.events],
            "skipped_notes": report.skipped_notes})
    return 0 if report.failed == 0 else 1


def _cmd_qualifications(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import Session

    from hub.db import create_db_engine
    from pipelines.registration.qualification_csv import import_qualifications_csv
    from schemas.envelope import utc_now
    from schemas.registration import Domain

    engine = create_db_engine(settings.database_url.get_secret_value())
    with Session(engine) as session:
        count = import_qualifications_csv(session, Path(args.file), args.entity,
                                          Domain(args.domain), utc_now())
        session.commit()
    _print({"imported": count, "entity": args.entity, "domain": args.domain})
    return 0


def _cmd_connectors(args: argparse.Namespace, settings: Settings) -> int:
    """The control API of a running hub (hub/control.py), as an administrator."""
    import httpx

    from hub.settings import RUN_DIR
    from hub.staff import local_token

    scheme = "https" if settings.http.tls_cert_file is not None else "http"
    base = (args.url or f"{scheme}://{settings.http_host}:{settings.http_port}").rstrip("/")
    token = os.environ.get("HUB_STAFF_TOKEN") or local_token(RUN_DIR)
    method, path = {
        "list": ("GET", "/connectors"),
        "status": ("GET", f"/connectors/{args.name}/status"),
        "pause": ("PUT", f"/connectors/{args.name}/pause"),
        "resume": ("PUT", f"/connectors/{args.name}/resume"),
        "restart": ("POST", f"/connectors/{args.name}/restart"),
    }[args.action]
    if args.action != "list" and not args.name:
        print(f"hub connectors {args.action}: name the connector", file=sys.stderr)
        return 2
    try:
        response = httpx.request(method, base + path, timeout=120.0,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        print(f"the hub at {base} does not answer ({type(exc).__name__}); is `hub run` "
              "running and HUB_HTTP_PORT right?", file=sys.stderr)
        return 1
    try:
        _print(response.json())
    except ValueError:
        print(response.text)
    return 0 if response.is_success else 1


def _cmd_connector(args: argparse.Namespace, settings: Settings) -> int:
    from hub.scaffold import ScaffoldError, write_connector

    try:
        written = write_connector(args.name, Path(args.dir))
    except ScaffoldError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(written)
    return 0


def _connector_parsers(sub: Any) -> None:
    """``hub connectors`` (a running hub's control API) and ``hub connector new``."""
    conns = sub.add_parser("connectors", help="the connectors of a running hub: list, "
                           "status, pause, resume, restart (its control API)")
    conns.add_argument("action", choices=["list", "status", "pause", "resume", "restart"])
    conns.add_argument("name", nargs="?", help="the connector (not for list)")
    conns.add_argument("--url", help="the hub's HTTP base URL (default: from the settings)")
    conns.set_defaults(func=_cmd_connectors)

    new = sub.add_parser("connector", help="write a new connector package (scaffold)")
    new.add_argument("action", choices=["new"])
    new.add_argument("name", help="the connector's name: lower-case letters, digits, '-'")
    new.add_argument("--dir", default=".", help="where the package directory goes")
    new.set_defaults(func=_cmd_connector)


def _identity_parsers(sub: Any) -> None:
    """``hub audit`` and ``hub users``."""
    aud = sub.add_parser("audit", help="the audit trail: list, verify the hash chain, prune")
    aud_sub = aud.add_subparsers(dest="action", required=True)
    aud_list = aud_sub.add_parser("list")
    aud_list.add_argument("--entity", action="append", help="a procuring entity; repeatable")
    aud_list.add_argument("--since", help="ISO 8601 date-time")
    aud_list.add_argument("--limit", type=int, default=100)
    aud_sub.add_parser("verify")
    aud_prune = aud_sub.add_parser("prune")
    aud_prune.add_argument("--days", type=int, help="default HUB_STAFF__AUDIT_RETENTION_DAYS")
    aud.set_defaults(func=_cmd_audit)

    users = sub.add_parser("users", help="the built-in local user store (docs/identity.md)")
    users_sub = users.add_subparsers(dest="action", required=True)
    add = users_sub.add_parser("add", help="add or replace a staff member")
    add.add_argument("name")
    add.add_argument("--email", required=True)
    add.add_argument("--display-name")
    add.add_argument("--entity", action="append", required=True,
                     help="a procuring entity code; repeatable")
    add.add_argument("--role", action="append", required=True,
                     choices=["contract-officer", "approver", "admin", "auditor"])
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of a prompt")
    users.set_defaults(func=_cmd_users)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the hub's workers until SIGTERM/SIGINT")
    run.add_argument("--bootstrap", help="module:function returning the Wiring to run")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="the main job on the embedded default, with a sample "
                          "case (starts the reference peers)")
    demo.set_defaults(func=_cmd_demo)

    peers = sub.add_parser("peers", help="run the reference peers on loopback until stopped")
    peers.set_defaults(func=_cmd_peers)

    topics = sub.add_parser("topics", help="declared topics and their dead-letter twins")
    topics.add_argument("action", choices=["apply", "list"])
    topics.set_defaults(func=_cmd_topics)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(func=_cmd_db)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay")
    dlq_sub = dlq.add_subparsers(dest="action", required=True)
    for name in ("list", "show", "replay"):
        p = dlq_sub.add_parser(name)
        p.add_argument("--topic", action="append", help="a topic (or its .dlq); repeatable")
        if name != "list":
            p.add_argument("ref", nargs="*", default=[],
                           help="dead letters as TOPIC.dlq/PARTITION/OFFSET")
        if name == "replay":
            p.add_argument("--all", action="store_true", help="every dead letter of the topics")
    dlq.set_defaults(func=_cmd_dlq)

    _identity_parsers(sub)

    rules = sub.add_parser("rules", help="the registration rules (REG, CHG, RNW)")
    rules.add_argument("action", choices=["evaluate"])
    rules.add_argument("file", help="a scenario JSON file (docs/rules.md)")
    rules.set_defaults(func=_cmd_rules)

    propagate = sub.add_parser("propagate",
                               help="apply due registrations to the other entities (REG-9)")
    propagate.set_defaults(func=_cmd_propagate)

    quals = sub.add_parser("qualifications", help="資格審査情報: import a CSV of qualifications")
    quals.add_argument("action", choices=["import"])
    quals.add_argument("file")
    quals.add_argument("--entity", required=True, help="procuring entity code")
    quals.add_argument("--domain", required=True, choices=["works", "goods"],
                       help="works (工事) or goods (物品)")
    quals.set_defaults(func=_cmd_qualifications)

    _connector_parsers(sub)

    docs = sub.add_parser("docs", help="write the AsyncAPI document and JSON Schemas")
    docs.add_argument("--out", default="docs/generated")
    docs.add_argument("--bootstrap", help="module:function returning the Wiring to document")
    docs.set_defaults(func=_cmd_docs)

    schemas = sub.add_parser("schemas", help="message schemas: check against the last release "
                             "(SCH-1), or release the current set")
    schemas.add_argument("action", choices=["check", "release"])
    schemas.add_argument("name", nargs="?", help="the release's name (release only)")
    schemas.add_argument("--released", help="where releases are kept (default "
                         "schemas/released)")
    schemas.set_defaults(func=_cmd_schemas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hub.production import EXIT_CONFIG, SecretFileError, load_secret_files
    from schemas.ids import use_id_key
    from schemas.sealed import use_field_keys

    # pyHanko imports cryptography's DSA types for old signatures; the hub makes none.
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    args = build_parser().parse_args(argv)
    if args.command != "docs":  # the generated documentation is public
        # Every file the hub makes is its user's only: 0600 files, 0700 directories (DAT-2).
        os.umask(0o077)
    if args.command == "demo":
        os.environ["HUB_PROFILE"] = "demo"  # the embedded default, for testing only
    try:
        load_secret_files()
        settings = load_settings()
        use_field_keys(settings.field_keys.get_secret_value() if settings.field_keys else None)
        use_id_key(settings.id_key.get_secret_value() if settings.id_key else None)
    except ValidationError as exc:  # its text would echo the values given: names only
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"hub: 設定が正しくありません / invalid settings: {where}", file=sys.stderr)
        return EXIT_CONFIG
    except (SecretFileError, ValueError) as exc:
        print(f"hub: 設定を読めません / unusable settings: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
