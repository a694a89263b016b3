"""``hub demo``: the hub's main job on its embedded default, with one complete case.

Starts the reference peers (SMTP, the ERP's SOAP service, D・Sure, the online application
system, CloudSign, the RFC 3161 TSA), applies the topics, runs the hub (SQLite file, local
Kafka, every pipeline, connector and job, the gateway, the staff API, the city's signer
on a SoftHSM2 token) and plugs the contractor's virtual IC card into pcscd's vpcd reader.
Then :mod:`hub.sample` plays the case from registration to the advance payment: 利用者登録
with the card agent, 案件情報 and 開札, the 申出書, 契約保証 checked against the case,
the contract set reviewed, agreed and signed on the card (PAdES B-T), the city's
agreement and B-LT signature, the ERP 契約登録, the conclusion mails, and 前払金保証
completing the advance-payment request. It prints the timeline as the events come back
from Kafka, the mails the SMTP peer received, where the signed PDF lies, and the PDF's
signatures as validated again here.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import secrets
import time
from pathlib import Path

from hub.bootstrap import Wiring, default_wiring
from hub.peers import LocalPeers
from hub.runtime import Hub
from hub.sample.case import SampleCase
from hub.sample.driver import CaseOutcome, CaseRun, Stage
from hub.sample.timeline import CaseTimeline
from hub.settings import RUN_DIR, Settings
from hub.topics import apply_topics, start_new_groups_at_end

__all__ = ["run_demo"]

JOB_INTERVAL_S = 0.5
"""The contract jobs' period in the demo (default 30 s): the case should not wait."""


def _mails(spool: Path, since: float, case: SampleCase) -> list[str]:
    """The mails of this case's parties the SMTP peer received since the demo began."""
    ours = {case.card_email, case.authorized.email, case.officer.email,
            case.city_officer.email}
    out = []
    for path in sorted(spool.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        if path.stat().st_mtime < since:
            continue
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if not ours & {a.addr_spec for a in msg["To"].addresses}:
            continue
        attached = [part.get_filename() for part in msg.iter_attachments()]
        extra = f"  + {', '.join(str(a) for a in attached)}" if attached else ""
        out.append(f"  {msg['Date']}  to {msg['To']}  「{msg['Subject']}」{extra}")
    return out


def _card_stack_problem() -> str | None:
    """Why the virtual card cannot be used here, or None."""
    try:
        from smartcard.System import readers

        from card_agent.virtualcard import READER

        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types when pcscd is down
        return f"PC/SC is not available ({type(exc).__name__})"
    if READER not in names:
        return f"pcscd runs without vsmartcard's reader {READER!r} (found {names})"
    return None


async def _report(outcome: CaseOutcome, case: SampleCase, run: Path) -> bool:
    from connectors._shared.files import contained, write_private
    from connectors.citysigner import async_validate_contract_pdf
    from devkit.pki import ensure_pki

    target = contained(RUN_DIR / "cases", f"{case.case_id}.pdf")
    write_private(target, outcome.signed_pdf)
    print(f"\nSigned contract: {target} ({len(outcome.signed_pdf):,} bytes)")
    report = await async_validate_contract_pdf(outcome.signed_pdf,
                                               ensure_pki(RUN_DIR / "pki").trust_roots)
    print("Its signatures, validated again here (CON-5):")
    for sig in report.signatures:
        stamped = f", timestamped {sig.timestamped_at}" if sig.timestamped_at else ""
        state = "valid" if sig.ok else "INVALID " + "; ".join(sig.problems)
        print(f"  {sig.field_name}: {sig.signer}{stamped}: {state}")
    hub_view = outcome.validation
    print(f"  the hub's archive says: valid={hub_view.get('valid')} "
          f"({len(hub_view.get('signatures', []))} signatures)")
    return report.valid and len(report.signatures) == 2 and bool(hub_view.get("valid"))


def _stage(wiring: Wiring, hub_url: str) -> Stage:
    """The local default as the case's parties reach it."""
    from connectors.dsure.peer import LOCAL_ISSUER_TOKEN
    from connectors.dsure.settings import DSureSettings
    from connectors.tsa import TsaSettings
    from devkit.pki import ensure_pki
    from hub.staff import local_token

    assert wiring.publisher is not None
    return Stage(hub_url=hub_url, engine=wiring.engine, publisher=wiring.publisher,
                 staff_token=local_token(RUN_DIR), dsure_url=DSureSettings().base_url,
                 dsure_issuer_token=LOCAL_ISSUER_TOKEN, tsa_url=TsaSettings().url,
                 pki=ensure_pki(RUN_DIR / "pki"), mail_spool=RUN_DIR / "peers" / "mail")


async def run_demo(settings: Settings) -> int:  # noqa: PLR0915 -- one story, told in order
    from card_agent.pcsc import PcscBackend
    from card_agent.virtualcard import READER, VirtualCard, seat
    from devkit.pki import ensure_pki

    problem = _card_stack_problem()
    if problem:
        print(f"The contractor's virtual IC card needs pcscd with vsmartcard's vpcd: {problem}."
              "\nStart it with `bash deploy/services.d/pcscd.sh start` (deploy/run-local.sh "
              "does), after `bash deploy/setup.sh`.")
        return 2
    settings = settings.model_copy(update={"contract": settings.contract.model_copy(
        update={"job_interval_s": JOB_INTERVAL_S})})
    run = RUN_DIR / "peers"
    peers = LocalPeers(run, RUN_DIR / "pki")
    print("Starting the reference peers:")
    peers.start()
    print("\n".join("  " + line for line in peers.describe()))
    started = asyncio.get_running_loop().time()
    wall_started = time.time()
    hub: Hub | None = None
    timeline: CaseTimeline | None = None
    card: VirtualCard | None = None
    case_run: CaseRun | None = None
    try:
        report = await apply_topics(settings.kafka)
        print(f"Topics: {len(report.created)} created, {len(report.unchanged)} already there "
              f"(Kafka at {settings.kafka.bootstrap_servers})")
        wiring = default_wiring(settings)
        # A fresh run directory means fresh consumer groups: start them after what earlier
        # runs left on the broker instead of replaying it (their mails, cases, ERP calls).
        await start_new_groups_at_end(settings.kafka, [c.name for c in wiring.consumers])
        hub = Hub(settings, wiring.consumers, engine=wiring.engine, jobs=wiring.jobs,
                  http_routers=wiring.routers, publisher=wiring.publisher,
                  closers=wiring.closers)
        case = SampleCase.new()
        timeline = CaseTimeline(settings.kafka, set())
        await timeline.start()
        await hub.start()
        hub_url = f"http://127.0.0.1:{settings.http_port}"
        print(f"Hub running: {len(wiring.consumers)} consumers, {len(wiring.jobs)} jobs, "
              f"database {wiring.engine.url.render_as_string(hide_password=True)}, "
              f"{hub_url}/readyz")
        pin = "".join(secrets.choice("0123456789") for _ in range(6))
        creds = ensure_pki(RUN_DIR / "pki").issue_card(case.holder, case.address,
                                                       random.randint(10**6, 10**9))
        card = seat(VirtualCard(creds.cert_der, creds.key_path, pin).start())
        print(f"Virtual IC card of {case.holder} in {READER!r} (its PIN stays in this process)")
        print(f"\nSample: contractor {case.user_id} ({case.trade_name}) at {case.entity}, "
              f"case {case.case_id}\n")
        case_run = CaseRun(_stage(wiring, hub_url), case, timeline, backend=PcscBackend(),
                           card=creds, pin=pin, reader=READER)
        outcome = await case_run.run()
        await timeline.poll(2.0)  # the last mails
        print(f"\nThe case took {outcome.seconds:.1f} s. Mails received by the SMTP peer "
              f"({run / 'mail'}):")
        print("\n".join(_mails(run / "mail", wall_started, case)) or "  (none)")
        valid = await _report(outcome, case, run)
        print(f"\nDone: {len(timeline.seen)} events of this case came back through Kafka in "
              f"{asyncio.get_running_loop().time() - started:.1f} s.")
        print("Next: `hub peers` and `hub run` keep the stack up (README, 'After the demo'); "
              "`bash deploy/stop.sh` stops Kafka, PostgreSQL and pcscd.")
        return 0 if valid else 1
    except (TimeoutError, RuntimeError) as exc:
        print(f"\nThe sample case stopped: {exc}. Logs: {run}/*.log and the lines above.")
        return 1
    finally:
        if case_run is not None:
            case_run.close()
        if card is not None:
            card.stop()
        if timeline is not None:
            await timeline.stop()
        if hub is not None:
            await hub.stop()
        peers.stop()
