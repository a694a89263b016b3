"""CloudSign's published OpenAPI document as the judge of what the connector sends and
what the reference peer answers (openapi-core; the document in tests/data/cloudsign/).

:class:`SpecRecorder` is an httpx event-hook pair: give its ``client()`` to the
connector's adapter, run a flow, then :meth:`SpecRecorder.violations` lists every
exchange the spec does not allow (an operation it does not have, a form field or
value it does not take, an answer of a status or shape it does not describe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

__all__ = ["SPEC_PATH", "SpecRecorder", "check", "spec"]

SPEC_PATH = (Path(__file__).resolve().parents[1] / "data" / "cloudsign"
             / "CloudSign-cloudsign-web_api-0.31.0-resolved.yaml")
SERVER = "https://api.cloudsign.jp"
"""The spec's production server: the peer's loopback URL is judged as if it were it."""


@cache
def spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


class _Request:
    def __init__(self, request: httpx.Request, body: bytes) -> None:
        url = urlsplit(str(request.url))
        self.host_url = SERVER
        self.path = url.path
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)),
            header=Headers(dict(request.headers)), cookie=ImmutableMultiDict())


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")
        self.data = response.content


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    problems: list[str] = field(default_factory=list)


def check(request: httpx.Request, response: httpx.Response, *,
          answer_only: bool = False) -> list[str]:
    """What the spec says is wrong with this request and its answer (empty: nothing).
    ``answer_only``: a request made invalid on purpose; judge only the answer."""
    body = request.content
    asked = _Request(request, body)
    problems = [] if answer_only else _undeclared(request, body)
    try:
        if not answer_only:
            spec().validate_request(asked)
    except Exception as exc:
        problems.append(f"request: {type(exc).__name__}: {_why(exc)}")
    try:
        spec().validate_response(asked, _Response(response))
    except Exception as exc:
        problems.append(f"answer {response.status_code}: {type(exc).__name__}: {_why(exc)}")
    return problems


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    paths = spec().spec / "paths"
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", key) + "$"), key)
            for key in paths.keys()]  # noqa: SIM118 -- a SchemaPath iterates its children


def declared_fields(method: str, path: str, content_type: str) -> set[str] | None:
    """The form fields the spec declares for this operation's body (``None``: no body
    schema to compare with). The spec's schemas allow extra properties (JSON Schema's
    default), so a field it does not have is caught here, not by validation."""
    kind = content_type.split(";", maxsplit=1)[0].strip()
    for pattern, key in _templates():
        if not pattern.match(path):
            continue
        operation = spec().spec / "paths" / key
        if method not in operation:
            return None
        body = operation / method
        if "requestBody" not in body or kind not in body / "requestBody" / "content":
            return None
        with (body / "requestBody" / "content" / kind / "schema").resolve() as resolved:
            return set((resolved.contents or {}).get("properties", {}))
    return None


def _undeclared(request: httpx.Request, body: bytes) -> list[str]:
    kind = request.headers.get("content-type", "")
    fields = declared_fields(request.method.lower(), request.url.path, kind)
    if fields is None or not body:
        return []
    if kind.startswith("application/x-www-form-urlencoded"):
        sent = set(parse_qs(body.decode(), keep_blank_values=True))
    elif kind.startswith("multipart/form-data"):
        sent = set(re.findall(rb'Content-Disposition: form-data; name="([^"]+)"', body))
        sent = {s.decode() for s in sent}  # type: ignore[misc]
    else:
        return []
    return [f"request: field {name!r} is not in the spec" for name in sorted(sent - fields)]


def _why(exc: BaseException) -> str:
    causes = [str(exc)]
    for attr in ("schema_errors", "__cause__"):
        value: Any = getattr(exc, attr, None)
        if value:
            causes.append(str(value if not isinstance(value, list | tuple)
                              else [str(v)[:300] for v in value]))
    return " / ".join(c[:500] for c in causes)


class SpecRecorder:
    """Records every exchange of the clients it makes, checked against the spec."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    @staticmethod
    async def _on_request(request: httpx.Request) -> None:
        await request.aread()  # multipart bodies stream; keep them to check

    async def _on_response(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.exchanges.append(Exchange(request.method, request.url.path, response.status_code,
                                       check(request, response)))

    def client(self, base_url: str, timeout: float = 5.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                 headers={"Accept": "application/json"},
                                 event_hooks={"request": [self._on_request],
                                              "response": [self._on_response]})

    def violations(self) -> list[str]:
        return [f"{e.method} {e.path} → {e.status}: {p}" for e in self.exchanges
                for p in e.problems]

    def operations(self) -> set[tuple[str, int]]:
        """(method + path shape, status) seen, ids replaced by ``{id}``."""
        shapes = set()
        for e in self.exchanges:
            parts = ["{id}" if len(p) >= 32 else p for p in e.path.split("/")]
            shapes.add((f"{e.method} {'/'.join(parts)}", e.status))
        return shapes
