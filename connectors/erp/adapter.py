# mypy: disallow-untyped-calls=False
# (zeep is typed only in part: Client, Transport and its exceptions have unannotated signatures.)
"""The ERP's SOAP client: zeep over requests, hardened against hostile XML.

zeep parses the shipped WSDL (no network at start-up) and every answer with
``forbid_dtd``, ``forbid_entities`` and ``forbid_external``: a DOCTYPE, an
entity declaration (billion laughs, XXE) or an external reference in an answer
is refused before anything is expanded or fetched (OWASP XXE Prevention Cheat
Sheet). Answers larger than ``max_response_bytes`` are refused unread.
zeep is synchronous: each call runs in a worker thread, bounded by the
connector's timeout. Every failure leaves here classified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import requests
import zeep
import zeep.exceptions as zx
from zeep.transports import Transport

from connectors._shared.errors import ConnectorError, PermanentPeerError, TransientPeerError
from connectors.erp.mapping import KIND_RULE, NAME, NAMESPACE, from_fault, from_receipt, to_soap
from connectors.erp.settings import ErpSettings
from schemas.erp import ErpRegistered, ErpRegistrationKind, ErpRegistrationRequested
from schemas.rejection import RuleViolation

__all__ = ["SoapErpAdapter", "classify_soap"]

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

_HOSTILE = (zx.DTDForbidden, zx.EntitiesForbidden, zx.ExternalReferenceForbidden)


class _LimitedTransport(Transport):
    """A transport that refuses answers over ``limit`` bytes before parsing them."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> Any:
        response = self.session.post(address, data=message, headers=headers,
                                     timeout=self.operation_timeout, stream=True)
        declared = response.headers.get("Content-Length", "0")
        body = response.raw.read(self.limit + 1, decode_content=True)
        if (declared.isdigit() and int(declared) > self.limit) or len(body) > self.limit:
            response.close()
            raise zx.TransportError(f"answer larger than {self.limit} bytes",
                                    status_code=response.status_code)
        response._content = body
        return response


def classify_soap(kind: ErpRegistrationKind, exc: BaseException) -> ConnectorError | None:
    """A zeep or network failure as a transient or permanent peer error."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, zx.Fault):
        return from_fault(kind, exc.code, exc.message)
    if isinstance(exc, _HOSTILE):
        log.warning("ERP answer refused: %s (DTD/entity/external reference)", type(exc).__name__)
        return TransientPeerError(NAME, f"hostile XML refused: {type(exc).__name__}")
    if isinstance(exc, requests.Timeout):
        return TransientPeerError(NAME, f"timeout: {type(exc).__name__}")
    if isinstance(exc, requests.ConnectionError):
        return TransientPeerError(NAME, f"network: {type(exc).__name__}")
    if isinstance(exc, zx.TransportError):
        status = exc.status_code or 0
        if status >= 500 or status in (0, 200, 408, 429):
            return TransientPeerError(NAME, f"HTTP {status}: {str(exc.message)[:120]}")
        return PermanentPeerError(NAME, f"HTTP {status} from the ERP endpoint; check HUB_ERP_URL")
    if isinstance(exc, zx.ValidationError):
        return PermanentPeerError(NAME, f"request breaks the ERP's WSDL: {exc.message}", (
            RuleViolation(rule_id=KIND_RULE[kind],
                          message_ja="登録内容が財務会計の形式に合いません。",
                          message_en=f"The registration does not fit the ERP's format: "
                                     f"{exc.message}",
                          next_step_ja="登録内容を確認・訂正して、もう一度依頼してください。",
                          next_step_en="Correct the registration and request it again."),))
    if isinstance(exc, zx.Error):
        return TransientPeerError(NAME, f"unreadable answer: {type(exc).__name__}: "
                                  f"{str(exc)[:120]}")
    if isinstance(exc, (TimeoutError, OSError)):
        return TransientPeerError(NAME, f"network: {type(exc).__name__}")
    return None


class SoapErpAdapter:
    """Registers requests with the ERP's SOAP service; raises only classified errors."""

    def __init__(self, settings: ErpSettings) -> None:
        self.settings = settings
        self.session = requests.Session()
        if settings.username and settings.password:
            self.session.auth = (settings.username, settings.password.get_secret_value())
        transport = _LimitedTransport(settings.max_response_bytes, session=self.session,
                                      timeout=settings.timeout_s,
                                      operation_timeout=settings.timeout_s)
        hardened = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True, xml_huge_tree=False)
        self.client = zeep.Client(wsdl=settings.wsdl, transport=transport, settings=hardened)
        self.service = self.client.create_service(f"{{{NAMESPACE}}}ErpService", settings.url)

    async def _run(self, kind: ErpRegistrationKind, func: Callable[P, T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except Exception as exc:
            error = classify_soap(kind, exc)
            if error is None:
                raise
            raise error from exc

    def _register(self, request: ErpRegistrationRequested) -> ErpRegistered:
        operation, argument, body = to_soap(request)
        receipt = self.service[operation](**{argument: body})
        return from_receipt(request, receipt)

    async def register(self, request: ErpRegistrationRequested) -> ErpRegistered:
        return await self._run(request.kind, self._register, request)

    async def ping(self) -> str:
        """The ERP's Ping answer, for the health check."""
        answer = await self._run(ErpRegistrationKind.CONTRACT, self.service.Ping)
        return str(answer)[:100]

    def close(self) -> None:
        self.session.close()
