"""``card-agent``: the contractor's command line for the IC card and the hub gateway.

    card-agent readers | watch | cert | pin-status | verify-pin
    card-agent login
    card-agent register --input registration.json
    card-agent change --input change.json
    card-agent renew --input renewal.json
    card-agent jobs | sign JOB_ID
    card-agent serve [--port 8489] [--allow-origin https://hub.example]

The hub, TSA and card CA chain come from options or ``CARD_AGENT_HUB``,
``CARD_AGENT_TSA_URL``, ``CARD_AGENT_TRUST_ROOTS`` (PEM files, ``:``-separated) and
``CARD_AGENT_CHAIN`` (PEM of the card CA), ``CARD_AGENT_TSA_MAINTENANCE`` (WIN-3); the
entity, system and domain a session is for from ``--entity``/``--system``/``--domain`` or
``CARD_AGENT_ENTITY``, ``CARD_AGENT_SYSTEM`` (e-contract) and ``CARD_AGENT_DOMAIN``
(works). The PIN is typed at a prompt (PIN-1).
Exit codes: 0 done, 1 refused by the hub or the card, 2 usage, 3 wrong PIN, 4 card locked,
5 held for a TSA maintenance window (WIN-3: run ``sign`` again after it).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from card_agent.card import CardBackend
from card_agent.client import (
    DEFAULT_HUB_URL,
    DocumentMismatchError,
    GatewayClient,
    GatewayRefusedError,
    InsecureHubUrlError,
    hub_http_client,
)
from card_agent.errors import CardError, CardLockedError, WrongPinError
from card_agent.flows import Agent, Console, printable_summary
from card_agent.serve import DEFAULT_PORT, AgentService, origin_of
from card_agent.tsa import AgentTimeStamper, TsaError, TsaInMaintenance, parse_windows

__all__ = ["TerminalConsole", "main"]


class TerminalConsole:
    """Prompts at the terminal; the PIN is read without echo and never kept."""

    def say(self, text: str) -> None:
        print(text)

    def ask_pin(self, prompt: str) -> str:
        return getpass.getpass(prompt)

    def ask_secret(self, prompt: str) -> str:
        return getpass.getpass(prompt)

    def confirm(self, prompt: str) -> bool:
        return input(prompt).strip().lower() in ("y", "yes", "はい")

    def wait_for_card_swap(self, prompt: str) -> None:
        input(prompt + " [Enter]")


def _pems(paths: str) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for path in filter(None, paths.split(":")):
        out.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="card-agent", description="IC-card agent of the hub")
    p.add_argument("--hub", default=os.environ.get("CARD_AGENT_HUB", DEFAULT_HUB_URL),
                   help="the hub's URL: https://..., or http:// to this PC only")
    p.add_argument("--ca-bundle", type=Path,
                   default=os.environ.get("CARD_AGENT_CA_BUNDLE") or None,
                   help="PEM CA bundle the hub's certificate must chain to (default: the "
                   "system's CA store)")
    p.add_argument("--backend", choices=("pcsc", "pkcs11"), default="pcsc")
    p.add_argument("--module", help="PKCS#11 module of the card vendor (--backend pkcs11)")
    p.add_argument("--reader", help="PC/SC reader name or PKCS#11 token label")
    p.add_argument("--tsa-url", default=os.environ.get("CARD_AGENT_TSA_URL"))
    p.add_argument("--tsa-maintenance",
                   default=os.environ.get("CARD_AGENT_TSA_MAINTENANCE", ""),
                   help='the TSA\'s announced windows, JSON: ["fixed BEGIN END", ...] (WIN-3)')
    p.add_argument("--trust-roots", default=os.environ.get("CARD_AGENT_TRUST_ROOTS", ""))
    p.add_argument("--chain", default=os.environ.get("CARD_AGENT_CHAIN", ""))
    p.add_argument("--entity", default=os.environ.get("CARD_AGENT_ENTITY", ""),
                   help="procuring entity the session is for (login, jobs, sign)")
    p.add_argument("--system", default=os.environ.get("CARD_AGENT_SYSTEM", "e-contract"),
                   choices=("e-bid", "e-contract"))
    p.add_argument("--domain", default=os.environ.get("CARD_AGENT_DOMAIN", "works"),
                   choices=("works", "goods"))
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("readers", "cert", "pin-status", "verify-pin", "login", "jobs"):
        sub.add_parser(name)
    watch = sub.add_parser("watch")
    watch.add_argument("--events", type=int, default=0, help="stop after N events (0: never)")
    for name in ("register", "change", "renew"):
        sub.add_parser(name).add_argument("--input", type=Path, required=True,
                                          help="JSON file with the inputs (REG-7)")
    sub.add_parser("sign").add_argument("job_id")
    serve = sub.add_parser("serve", help="the localhost service for the hub's pages")
    serve.add_argument("--port", type=int,
                       default=int(os.environ.get("CARD_AGENT_PORT", DEFAULT_PORT)))
    serve.add_argument("--allow-origin", action="append",
                       default=os.environ.get("CARD_AGENT_ALLOWED_ORIGINS", "").split(),
                       help="a hub origin whose pages may call the agent (repeatable; "
                       "default: the origin of --hub)")
    return p


def _backend(args: argparse.Namespace) -> CardBackend:
    if args.backend == "pkcs11":
        if not args.module:
            raise SystemExit("--backend pkcs11 needs --module (the vendor's PKCS#11 library)")
        from card_agent.pkcs11_backend import Pkcs11Backend

        return Pkcs11Backend(args.module)
    from card_agent.pcsc import PcscBackend

    return PcscBackend()


def _show_card(agent: Agent, console: Console) -> None:
    with agent.backend.open(agent.reader) as card:
        cert = card.certificate()
        console.say(f"名義人 / holder : {cert.subject.rfc4514_string()}\n"
                    f"発行者 / issuer : {cert.issuer.rfc4514_string()}\n"
                    f"serial         : {cert.serial_number}\n"
                    f"有効期間 / valid: {cert.not_valid_before_utc:%Y-%m-%d} – "
                    f"{cert.not_valid_after_utc:%Y-%m-%d}")


def _run(args: argparse.Namespace, agent: Agent, console: Console) -> int:
    command = args.command
    if command == "readers":
        for name in agent.backend.readers():
            console.say(name)
    elif command == "watch":
        from card_agent.pcsc import watch

        done = threading.Event()
        count = [0]

        def on_change(event: str, reader: str) -> None:
            console.say(f"{event}: {reader}")
            count[0] += 1
            if args.events and count[0] >= args.events:
                done.set()

        stop = watch(on_change)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop()
    elif command == "cert":
        _show_card(agent, console)
    elif command == "pin-status":
        with agent.backend.open(agent.reader) as card:
            status = card.pin_status()
        console.say("ロック中 / locked (PIN-1)" if status.locked else
                    f"残り回数 / retries left: {status.retries_left}")
    elif command == "verify-pin":
        with agent.unlock():
            console.say("PINを確認しました / PIN accepted")
    elif command == "login":
        session = agent.login()
        console.say(f"ログインしました / logged in: ユーザID {session['user_id']}, "
                    f"企業ID {session['company_id']}")
    elif command in ("register", "change", "renew"):
        fields: dict[str, Any] = json.loads(args.input.read_text(encoding="utf-8"))
        outcome = getattr(agent, command)(fields)
        printable_summary(outcome, console.say)
        return 0 if outcome["status"] in ("done", "pending") else 1
    elif command == "jobs":
        agent.login()
        for job in agent.gateway.jobs():
            console.say(f"{job['id']}  {job['status']:8}  {job['amount_yen']:>14,} 円  "
                        f"{job['subject']}")
    elif command == "serve":
        _serve(args, agent, console)
    elif command == "sign":
        agent.login()
        result = agent.sign_job(args.job_id, chain=agent.gateway.chain)
        if result is not None:
            console.say(f"署名を受け付けました / signature accepted: {result['id']}")
    return 0


def _serve(args: argparse.Namespace, agent: Agent, console: Console) -> None:
    """Run the localhost service until interrupted (card_agent.serve)."""
    service = AgentService(backend=agent.backend, hub=agent.gateway.http,
                           origins=args.allow_origin or [origin_of(args.hub)],
                           chain=agent.gateway.chain, tsa=agent.tsa, reader=agent.reader,
                           port=args.port, where=agent.gateway.where)
    port = service.start()
    console.say(f"ICカードエージェント: http://127.0.0.1:{port}/ "
                f"(hubs: {' '.join(sorted(service.origins))})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = _parser().parse_args(argv)
    console = console or TerminalConsole()
    chain = _pems(args.chain)
    tsa = None
    if args.tsa_url:
        tsa = AgentTimeStamper(args.tsa_url, _pems(args.trust_roots),
                               parse_windows(args.tsa_maintenance))
    try:
        http_client = hub_http_client(args.hub, ca_bundle=args.ca_bundle)
    except (InsecureHubUrlError, OSError) as exc:
        console.say(f"ハブの URL または CA バンドルを使えません / cannot use the hub's URL or "
                    f"CA bundle: {exc}")
        return 2
    with http_client as http:
        where = {"procuring_entity": args.entity, "system": args.system, "domain": args.domain}
        agent = Agent(backend=_backend(args), gateway=GatewayClient(http, chain, where),
                      console=console, reader=args.reader, tsa=tsa)
        try:
            return _run(args, agent, console)
        except WrongPinError as exc:
            _violation(console, exc.violation.model_dump())
            return 3
        except CardLockedError as exc:
            _violation(console, exc.violation.model_dump())
            return 4
        except CardError as exc:
            _violation(console, exc.violation.model_dump())
            return 1
        except GatewayRefusedError as exc:
            for v in exc.violations:
                _violation(console, v.model_dump())
            if not exc.violations:
                console.say(f"ハブが要求を拒否しました / the hub refused: HTTP {exc.status}")
            return 1
        except DocumentMismatchError as exc:
            _violation(console, exc.violation.model_dump())
            return 1
        except TsaInMaintenance as exc:
            console.say(f"[WIN-3] タイムスタンプ局がメンテナンス中です。"
                        f"{exc.until:%Y-%m-%d %H:%M} UTC 以降に再実行してください。"
                        "署名依頼はそのまま残ります。\n"
                        f"The TSA is in maintenance until {exc.until.isoformat()}; run sign "
                        "again afterwards. The job stays pending.")
            return 5
        except TsaError as exc:
            console.say(f"TSA: {exc.reason}")
            return 1
        except httpx.HTTPError as exc:
            console.say(f"ハブに接続できません / cannot reach the hub: {type(exc).__name__}")
            return 1


def _violation(console: Console, v: dict[str, Any]) -> None:
    console.say(f"[{v['rule_id']}] {v['message_ja']}\n    {v['message_en']}")
    if v.get("next_step_ja"):
        console.say(f"    → {v['next_step_ja']} / {v['next_step_en']}")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
