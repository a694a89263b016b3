"""The connectors' control API, after Kafka Connect's REST API.

    GET  /connectors                          the connectors of this process
    GET  /connectors/{name}/status            state, circuit, window, lag, last error,
                                              health
    PUT  /connectors/{name}/pause             stop handling; work waits on its topic
    PUT  /connectors/{name}/resume            handle again from the first record not handled
    POST /connectors/{name}/restart           a fresh connector from its settings
    PUT  /connectors/{name}/config/validate   check settings without applying them

Pause stops the Kafka consumer's fetching of the connector's partitions and waits for
the batch in flight to end (hub/broker.py): nothing is dropped, nothing is handled while
paused, and the next batch after resume starts at the first record not handled. State
is per process: with several ``hub run`` processes, each is paused through its own API.

Only the hub's administrators (管理者) may steer connectors. :func:`administrator_only`
is the one place that decides who that is: with the staff's identity (hub/identity.py)
a caller holding the ``admin`` role (401 IAM-1 without a valid token, 403 IAM-2 without
the role); with a bare :class:`~hub.staff.StaffAuth`, any staff token. Every steering
call is logged (who asked from where, what, the outcome), never with a credential; with
the identity and a database, pause, resume and restart, refused ones too, are also rows
of the hash-chained audit trail (``connectors.pause`` ..., docs/identity.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from hub import audit
from hub.broker import ConsumerRuntime
from hub.identity import Principal, Role, StaffIdentity, denied_role
from hub.plugins import RunningConnector
from hub.staff import StaffAuth
from schemas.envelope import utc_now
from schemas.rejection import RuleViolation

__all__ = ["ADMINISTRATOR_ROLE", "ConnectorControl", "administrator_only", "control_router",
           "mount"]

log = logging.getLogger("hub.control")

ADMINISTRATOR_ROLE = "管理者"
"""The role the control API requires (``admin`` in the staff's identity, hub/identity.py)."""

UNKNOWN = RuleViolation(
    rule_id="OPS-1",
    message_ja="その名前のコネクタはこのハブで動いていません。",
    message_en="No connector of that name runs in this hub.",
    next_step_ja="GET /connectors で動いているコネクタの名前を確かめてください。",
    next_step_en="List the running connectors with GET /connectors and use one of their names.",
)

BAD_CONFIG = "OPS-2"
"""A connector configuration that its settings class refuses (config/validate)."""


def administrator_only(router: APIRouter, auth: StaffAuth | StaffIdentity,
                       engine: Engine | None = None) -> APIRouter:
    """``router`` for the 管理者 role only: every route answers 401 without a valid staff
    token and, with the staff's identity, 403 (IAM-2) without the ``admin`` role. The
    caller is left in ``request.state.staff`` for the routes' audit rows."""
    if isinstance(auth, StaffAuth):
        guarded = APIRouter(dependencies=[Depends(auth.require)])
        guarded.include_router(router)
        return guarded
    identity = auth

    async def admin(request: Request,
                    authorization: Annotated[str | None, Header()] = None) -> None:
        who = identity.known(authorization)
        if who is None:  # a provider's first token may fetch its keys
            who = await run_in_threadpool(identity.principal, authorization)
        if Role.ADMIN not in who.roles:
            if engine is not None:
                await run_in_threadpool(_audit, engine, who, request,
                                        action="connectors.access",
                                        target=request.url.path[:300], outcome="denied",
                                        detail="role")
            raise denied_role({Role.ADMIN})
        request.state.staff = who

    guarded = APIRouter(dependencies=[Depends(admin)])
    guarded.include_router(router)
    return guarded


def _audit(engine: Engine, who: Principal, request: Request, *, action: str, target: str,
           outcome: str, detail: str = "") -> None:
    scope = who.entity_filter()
    audit.record_alone(engine, actor=who.who, actor_kind=who.kind,
                       role=Role.ADMIN.value if Role.ADMIN in who.roles else "",
                       entity=",".join(sorted(scope)) if scope is not None else "*",
                       action=action, target=target, at=utc_now(), client=_who(request),
                       outcome=outcome, detail=detail)


class ConnectorControl:
    """The running connectors of a hub and their consumers, as the API steers them."""

    def __init__(self, connectors: Sequence[RunningConnector],
                 runtimes: Callable[[], Sequence[ConsumerRuntime]],
                 engine: Engine | None = None) -> None:
        self.connectors = {c.name: c for c in connectors}
        self._runtimes = runtimes
        self.engine = engine
        """Where steering calls are audited (with the staff's identity)."""

    @contextlib.asynccontextmanager
    async def audited(self, request: Request, action: str, name: str) -> AsyncIterator[None]:
        """One audit row for a steering call, its outcome as it ended (``refused`` for an
        unknown connector, ``failed`` for an error); nothing without a database or a
        caller resolved by the staff's identity."""
        who: Principal | None = getattr(request.state, "staff", None)
        outcome = "failed"
        try:
            yield
            outcome = "ok"
        except HTTPException as exc:
            outcome = "refused" if exc.status_code < 500 else "failed"
            raise
        finally:
            if self.engine is not None and who is not None:
                await run_in_threadpool(_audit, self.engine, who, request, action=action,
                                        target=name, outcome=outcome)

    def runtime(self, running: RunningConnector) -> ConsumerRuntime | None:
        return next((rt for rt in self._runtimes() if rt.spec.name == running.spec.name), None)

    def get(self, name: str) -> RunningConnector:
        found = self.connectors.get(name)
        if found is None:
            raise HTTPException(404, detail={"violations": [UNKNOWN.model_dump()]})
        return found

    async def pause(self, name: str) -> RunningConnector:
        """Stop handling ``name``'s records once the batch in flight has ended; they wait
        on their topic (the API's ``PUT .../pause`` and the console's コネクタ page)."""
        running = self.get(name)
        rt = self.runtime(running)
        if rt is not None:
            await rt.pause()
        return running

    def resume(self, name: str) -> RunningConnector:
        """Handle ``name``'s records again from the first one not handled."""
        running = self.get(name)
        rt = self.runtime(running)
        if rt is not None:
            rt.resume()
        return running

    async def status(self, running: RunningConnector) -> dict[str, Any]:
        rt = self.runtime(running)
        guard = getattr(running.connector, "guard", None)
        now = datetime.now(UTC)
        circuit = window = None
        if guard is not None:
            circuit = {"state": guard.breaker.state.value,
                       "seconds_until_trial": round(guard.breaker.seconds_until_trial(), 1)}
            closed = guard.calendar.closed_until(now)
            window = ({"closed_until": closed[0].isoformat(), "window": str(closed[1])}
                      if closed else None)
        if rt is None:
            state = "UNASSIGNED"
        elif rt.paused:
            state = "PAUSED"
        elif not rt.healthy:
            state = "FAILED"
        else:
            state = "RUNNING"
        error = running.last_error
        try:
            health = await running.connector.health()
            checked: dict[str, Any] = {"state": health.state.value, "detail": health.detail}
        except Exception as exc:  # a health check must not fail the status
            checked = {"state": "down", "detail": type(exc).__name__}
        return {
            "name": running.name,
            "consumer": running.spec.name,
            "topics": [t.name for t in running.plugin.consumes],
            "state": state,
            "circuit": circuit,
            "window": window,
            "lag": await lag_of(rt) if rt is not None else {},
            "last_error": ({"at": error.at.isoformat(), "kind": error.kind,
                            "detail": error.detail} if error else None),
            "restarts": running.restarts,
            "health": checked,
        }


async def lag_of(rt: ConsumerRuntime) -> dict[str, int]:
    """Records behind the end of each partition this process holds (``topic/partition``)."""
    consumer = getattr(rt.subscriber, "consumer", None) if rt.subscriber else None
    if consumer is None:
        return {}
    found: dict[str, int] = {}
    with contextlib.suppress(KafkaError, AssertionError):
        parts: list[TopicPartition] = sorted(consumer.assignment())
        if parts:
            ends = await consumer.end_offsets(parts)
            for tp in parts:
                position = await consumer.position(tp)
                found[f"{tp.topic}/{tp.partition}"] = max(0, ends[tp] - position)
    return found


def _secret_fields(settings: type[Any]) -> set[str]:
    """Fields whose type holds a SecretStr or SecretBytes."""
    found = set()
    for name, info in settings.model_fields.items():
        text = repr(info.annotation)
        if "SecretStr" in text or "SecretBytes" in text:
            found.add(name)
    return found


def _who(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def control_router(control: ConnectorControl) -> APIRouter:
    """The routes (put them behind :func:`administrator_only`)."""
    router = APIRouter(prefix="/connectors", tags=["connectors"])

    @router.get("")
    async def list_connectors() -> list[dict[str, Any]]:
        return [{"name": c.name, "consumer": c.spec.name, "description": c.plugin.description,
                 "topics": [t.name for t in c.plugin.consumes],
                 "settings_prefix": c.plugin.settings.model_config.get("env_prefix", "")}
                for c in control.connectors.values()]

    @router.get("/{name}/status")
    async def status(name: str) -> dict[str, Any]:
        return await control.status(control.get(name))

    @router.put("/{name}/pause")
    async def pause(name: str, request: Request) -> dict[str, Any]:
        async with control.audited(request, "connectors.pause", name):
            running = await control.pause(name)
        log.info("connector %s paused (asked from %s)", name, _who(request))
        return await control.status(running)

    @router.put("/{name}/resume")
    async def resume(name: str, request: Request) -> dict[str, Any]:
        async with control.audited(request, "connectors.resume", name):
            running = control.resume(name)
        log.info("connector %s resumed (asked from %s)", name, _who(request))
        return await control.status(running)

    @router.post("/{name}/restart")
    async def restart(name: str, request: Request) -> dict[str, Any]:
        """A fresh connector from its settings; its consumer keeps its offsets. The batch
        in flight ends first, and a paused connector stays paused."""
        async with control.audited(request, "connectors.restart", name):
            running = control.get(name)
            rt = control.runtime(running)
            was_paused = rt is not None and rt.paused
            if rt is not None and not was_paused:
                await rt.pause()
            try:
                await running.restart()
            finally:
                if rt is not None and not was_paused:
                    rt.resume()
        log.info("connector %s restarted (asked from %s)", name, _who(request))
        return await control.status(running)

    @router.put("/{name}/config/validate")
    async def validate(name: str, config: dict[str, Any],
                       request: Request) -> dict[str, Any]:
        """Whether ``config`` (field names of its settings class) would be accepted. The
        input is never echoed back, nor any message about a secret field."""
        running = control.get(name)
        errors: list[dict[str, Any]] = []
        try:
            running.plugin.settings(**config)
        except ValidationError as exc:
            secret = _secret_fields(running.plugin.settings)
            for e in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(p) for p in e["loc"])
                message = ("not accepted (a secret: its value is not shown)"
                           if str(e["loc"][0]) in secret else e["msg"])
                errors.append({"field": where, "message": message, "rule_id": BAD_CONFIG})
        except (TypeError, ValueError) as exc:
            errors = [{"field": "", "message": type(exc).__name__, "rule_id": BAD_CONFIG}]
        log.info("connector %s: configuration checked, %d error(s) (asked from %s)", name,
                 len(errors), _who(request))
        return {"name": name, "valid": not errors, "error_count": len(errors),
                "errors": errors}

    return router


def mount(http: Any, connectors: Sequence[RunningConnector],
          runtimes: Callable[[], Sequence[ConsumerRuntime]], auth: StaffAuth | StaffIdentity,
          engine: Engine | None = None) -> None:
    """Add the control API, for administrators only, to the hub's FastAPI app; ``engine``:
    where steering calls are audited (with the staff's identity). The control is left in
    ``http.state.control`` for the staff console's コネクタ page."""
    control = ConnectorControl(connectors, runtimes, engine)
    http.state.control = control
    http.include_router(administrator_only(control_router(control), auth, engine))
