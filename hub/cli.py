"""The ``hub`` command.

    hub demo                           the main job on the embedded default, with a sample case
    hub run [--bootstrap MOD:FUNC]     the workers (consumers, outbox relay, retries, HTTP)
    hub peers                          the reference peers (SMTP, SOAP ERP, D・Sure, TSA, ...)
    hub topics apply|list              topics of schemas/topics.py on the cluster
    hub db upgrade|current             Alembic migrations
    hub dlq list|show|replay           dead letters
    hub docs [--out DIR]               AsyncAPI document and JSON Schemas
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
    from connectors._shared.files import DIR_MODE
    from hub.bootstrap import load_wiring
    from hub.logs import setup_logging
    from hub.production import EXIT_CONFIG, demo_banner, production_problems, refusal_text
    from hub.runtime import Hub
    from hub.settings import RUN_DIR

    problems = production_problems(settings)
    if settings.profile == "production" and problems:
        print(refusal_text(problems), file=sys.stderr, flush=True)
        return EXIT_CONFIG
    if RUN_DIR.is_dir():  # the embedded default's PKI, token and database live there
        os.chmod(RUN_DIR, DIR_MODE)
    setup_logging(settings.log_level, settings.log_format)
    if problems:
        logging.getLogger("hub.production").warning(
            "%s", demo_banner(settings.profile, problems))
    wiring = load_wiring(args.bootstrap, settings)
    hub = Hub(settings, wiring.consumers, engine=wiring.engine, jobs=wiring.jobs,
              http_routers=wiring.routers, publisher=wiring.publisher, closers=wiring.closers)
    if wiring.connectors is not None:
        from hub.control import mount
        from hub.staff import staff_auth

        mount(hub.http, list(wiring.connectors.running.values()), lambda: hub.runtimes,
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
    from hub.topics import apply_topics

    topics = all_topics()
    if args.action == "list":
        _print([{"topic": t.name, "dlq": t.dlq, "partitions": t.partitions, "key": t.key.value,
                 "retention_days": t.retention_ms / 86_400_000, "description": t.description}
                for t in topics])
        return 0
    report = asyncio.run(apply_topics(settings.kafka, topics))
    _print({"created": report.created, "grown": report.grown,
            "unchanged": len(report.unchanged)})
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
    count = asyncio.run(replay(settings, chosen))
    _print({"replayed": count, "refs": [d.ref for d in chosen]})
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

    docs = sub.add_parser("docs", help="write the AsyncAPI document and JSON Schemas")
    docs.add_argument("--out", default="docs/generated")
    docs.add_argument("--bootstrap", help="module:function returning the Wiring to document")
    docs.set_defaults(func=_cmd_docs)
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
