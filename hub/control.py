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

Callers are the hub's staff (hub/identity.py: the staff's OpenID Connect tokens, the local
user store, static tokens). Reading (the list, a status) takes any staff token; steering
(pause, resume, restart, config/validate) takes the 管理者 role (``admin``). Without a
valid token: 401, IAM-1; without the role: 403, IAM-2, both in Japanese and English with
what to do next. Every steering call, and every refused one, is a row of the hash-chained
audit trail (``hub audit list``: who, from where, which connector, the outcome), written
durably before the answer; the log has it too, never with a credential.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at
# definition, and the caller's dependency is local to :func:`control_router`.

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from hub import audit
from hub.broker import ConsumerRuntime
from hub.identity import Principal, Role, StaffIdentity, denied_role
from hub.plugins import RunningConnector
from schemas.rejection import RuleViolation

__all__ = ["STEERING_ROLE", "ConnectorControl", "control_router", "mount"]

log = logging.getLogger("hub.control")

STEERING_ROLE = Role.ADMIN
"""管理者: the role that pauses, resumes, restarts and validates connectors."""

UNKNOWN = RuleViolation(
    rule_id="OPS-1",
    message_ja="その名前のコネクタはこのハブで動いていません。",
    message_en="No connector of that name runs in this hub.",
    next_step_ja="GET /connectors で動いているコネクタの名前を確かめてください。",
    next_step_en="List the running connectors with GET /connectors and use one of their names.",
)

BAD_CONFIG = "OPS-2"
"""A connector configuration that its settings class refuses (config/validate)."""


class ConnectorControl:
    """The running connectors of a hub and their consumers, as the API steers them."""

    def __init__(self, connectors: Sequence[RunningConnector],
                 runtimes: Callable[[], Sequence[ConsumerRuntime]], identity: StaffIdentity,
                 engine: Engine,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.connectors = {c.name: c for c in connectors}
        self._runtimes = runtimes
        self.identity = identity
        self.engine = engine
        self._clock = clock

    async def caller(self, authorization: str | None) -> Principal:
        """The staff member behind ``authorization``; 401 (IAM-1) without a valid token.
        A provider token seen for the first time (its keys may be fetched) is verified in
        a worker thread."""
        who = self.identity.known(authorization)
        if who is None:
            who = await run_in_threadpool(self.identity.principal, authorization)
        return who

    def _audit(self, who: Principal, request: Request, action: str, name: str, *,
               outcome: str, detail: str) -> None:
        with Session(self.engine, expire_on_commit=False) as tx, tx.begin():
            audit.record(tx, actor=who.who, actor_kind=who.kind, action=action,
                         target=f"connector:{name}", at=self._clock(),
                         role=STEERING_ROLE.value, entity="*", client=_who(request),
                         outcome=outcome, detail=detail)

    async def steer(self, who: Principal, request: Request, action: str, name: str,
                    step: Callable[[RunningConnector], Awaitable[str]]) -> RunningConnector:
        """Do ``step`` on connector ``name`` for ``who`` if they hold the 管理者 role, and
        record it in the audit trail whatever the outcome (``denied``, ``ok``, ``failed``).
        ``step`` returns the row's detail."""
        if STEERING_ROLE not in who.roles:
            await run_in_threadpool(self._audit, who, request, action, name,
                                    outcome="denied",
                                    detail=f"needs the role {STEERING_ROLE.value}")
            log.info("%s on connector %s refused: %s lacks the role %s (asked from %s)",
                     action, name, who.who, STEERING_ROLE.value, _who(request))
            raise denied_role({STEERING_ROLE})
        running = self.get(name)
        try:
            detail = await step(running)
        except Exception as exc:
            await run_in_threadpool(self._audit, who, request, action, name,
                                    outcome="failed", detail=type(exc).__name__)
            raise
        await run_in_threadpool(self._audit, who, request, action, name, outcome="ok",
                                detail=detail)
        log.info("%s on connector %s by %s (asked from %s): %s", action, name, who.who,
                 _who(request), detail)
        return running

    def runtime(self, running: RunningConnector) -> ConsumerRuntime | None:
        return next((rt for rt in self._runtimes() if rt.spec.name == running.spec.name), None)

    def get(self, name: str) -> RunningConnector:
        found = self.connectors.get(name)
        if found is None:
            raise HTTPException(404, detail={"violations": [UNKNOWN.model_dump()]})
        return found

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
    """The routes: reading for any staff member, steering for the 管理者 role (see module
    doc); each call is authenticated by :meth:`ConnectorControl.caller`."""
    router = APIRouter(prefix="/connectors", tags=["connectors"])

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Principal:
        return await control.caller(authorization)

    caller_t = Annotated[Principal, Depends(caller)]

    @router.get("")
    async def list_connectors(who: caller_t) -> list[dict[str, Any]]:
        return [{"name": c.name, "consumer": c.spec.name, "description": c.plugin.description,
                 "topics": [t.name for t in c.plugin.consumes],
                 "settings_prefix": c.plugin.settings.model_config.get("env_prefix", "")}
                for c in control.connectors.values()]

    @router.get("/{name}/status")
    async def status(name: str, who: caller_t) -> dict[str, Any]:
        return await control.status(control.get(name))

    @router.put("/{name}/pause")
    async def pause(name: str, who: caller_t, request: Request) -> dict[str, Any]:
        async def step(running: RunningConnector) -> str:
            rt = control.runtime(running)
            if rt is not None:
                await rt.pause()
            return "paused"

        return await control.status(
            await control.steer(who, request, "connector.pause", name, step))

    @router.put("/{name}/resume")
    async def resume(name: str, who: caller_t, request: Request) -> dict[str, Any]:
        async def step(running: RunningConnector) -> str:
            rt = control.runtime(running)
            if rt is not None:
                rt.resume()
            return "resumed"

        return await control.status(
            await control.steer(who, request, "connector.resume", name, step))

    @router.post("/{name}/restart")
    async def restart(name: str, who: caller_t, request: Request) -> dict[str, Any]:
        """A fresh connector from its settings; its consumer keeps its offsets. The batch
        in flight ends first, and a paused connector stays paused."""
        async def step(running: RunningConnector) -> str:
            rt = control.runtime(running)
            was_paused = rt is not None and rt.paused
            if rt is not None and not was_paused:
                await rt.pause()
            try:
                await running.restart()
            finally:
                if rt is not None and not was_paused:
                    rt.resume()
            return f"restarted (restart {running.restarts})"

        return await control.status(
            await control.steer(who, request, "connector.restart", name, step))

    @router.put("/{name}/config/validate")
    async def validate(name: str, config: dict[str, Any], who: caller_t,
                       request: Request) -> dict[str, Any]:
        """Whether ``config`` (field names of its settings class) would be accepted. The
        input is never echoed back, nor any message about a secret field; the audit row
        names only the fields refused."""
        errors: list[dict[str, Any]] = []

        async def step(running: RunningConnector) -> str:
            try:
                running.plugin.settings(**config)
            except ValidationError as exc:
                secret = _secret_fields(running.plugin.settings)
                for e in exc.errors(include_input=False, include_url=False):
                    where = ".".join(str(p) for p in e["loc"])
                    message = ("not accepted (a secret: its value is not shown)"
                               if str(e["loc"][0]) in secret else e["msg"])
                    errors.append({"field": where, "message": message,
                                   "rule_id": BAD_CONFIG})
            except (TypeError, ValueError) as exc:
                errors.append({"field": "", "message": type(exc).__name__,
                               "rule_id": BAD_CONFIG})
            fields = sorted({e["field"] for e in errors if e["field"]})
            return (f"configuration checked: {len(errors)} error(s)"
                    + (f" in {', '.join(fields)}" if fields else ""))

        await control.steer(who, request, "connector.validate", name, step)
        return {"name": name, "valid": not errors, "error_count": len(errors),
                "errors": errors}

    return router


def mount(http: Any, connectors: Sequence[RunningConnector],
          runtimes: Callable[[], Sequence[ConsumerRuntime]], identity: StaffIdentity,
          engine: Engine) -> ConnectorControl:
    """Add the control API to the hub's FastAPI app: staff only, steering for the 管理者
    role, audited in ``engine``'s ``hub_audit``."""
    control = ConnectorControl(connectors, runtimes, identity, engine)
    http.include_router(control_router(control))
    return control
