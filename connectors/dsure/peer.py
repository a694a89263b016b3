"""Reference D・Sure (保証確認サービス): a real HTTP service for tests and the local default.

D・Sure has no public API; the project models its lookup as one HTTP call
(DSURE-API below). The reference service keeps certificates in memory, issues a
認証キー and the 「認証キーのお知らせ」 PDF with each, and answers lookups the way
D・Sure shows a certificate (Japanese labels, 和暦 dates; see ``mapping``).

DSURE-API (what the connector and this service agree on):

- ``POST /api/v1/certificates/lookup`` with ``Authorization: Bearer <city token>``
  and ``{"contract_number": "31072-0001M", "auth_key": "..."}`` →
  200 ``{"certificate": {...}}``; 404 ``{"error": "not-found"}`` (no such number);
  403 ``{"error": "key-mismatch"}``; 401 (the city's token is wrong);
  503 ``{"error": "maintenance", "until": ISO-8601}`` with ``Retry-After``.
- ``GET /api/v1/health`` → ``{"status": "ok"}``.

The surety company's side (reference only; D・Sure's real issuers publish from their
own systems): ``POST /api/v1/issuer/certificates`` with ``Authorization: Bearer <issuer
token>`` and a certificate (the fields of :class:`SuretyCertificate`) publishes it and
answers 201 ``{"contract_number": ..., "auth_key": ...}``, the pair the contractor then
hands to the city (SUR-1). The local default and the tests issue each case's guarantees
this way.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlparse

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from connectors._shared.loopback import LoopbackServer, PeerFaults, install_faults, serve_forever
from connectors.dsure.mapping import certificate_to_peer
from connectors.dsure.noticepdf import render_key_notice
from connectors.dsure.settings import LOCAL_ISSUER_TOKEN, DSurePeerSettings, DSureSettings
from schemas.envelope import JST
from schemas.surety import SuretyCertificate, SuretyIssueKind, SuretyProduct

__all__ = ["LOCAL_ISSUER_TOKEN", "DSurePeer", "IssuedCertificate", "create_app", "seed_certificate"]

"""The issuer token of the reference service in the local default (not a real secret)."""
_KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: SuretyCertificate
    auth_key: str = field(repr=False)

    def notice_pdf(self) -> bytes:
        """The 「認証キーのお知らせ」 the contractor would download and upload (SUR-1)."""
        cert = self.certificate
        return render_key_notice(
            contract_number=cert.contract_number, auth_key=self.auth_key,
            work_name=cert.work_name, contractor_name=cert.contractor_name,
            product_ja=cert.product.label_ja, surety_company=cert.surety_company,
        )


def seed_certificate(contract_number: str = "31072-0001M") -> SuretyCertificate:
    """The 保証証書 of seed 002 (前払金保証): the reference service's demo data."""
    return SuretyCertificate(
        contract_number=contract_number,
        product=SuretyProduct.ADVANCE_PAYMENT,
        issue_kind=SuretyIssueKind.NEW,
        surety_company="東日本建設業保証株式会社",
        procuring_entity_name="足利市長",
        work_name="●●●●工事",
        contractor_name="〇〇建設 株式会社",
        contract_amount=50_000_000,
        guarantee_amount=20_000_000,
        guarantee_deadline=date(2023, 9, 30),
        work_period_start=date(2022, 9, 30),
        work_period_end=date(2023, 9, 30),
        contract_date=date(2022, 9, 30),
        depository="〇〇銀行 ××支店",
        issued_at=datetime(2023, 9, 4, 12, 0, tzinfo=JST),
    )


class _Lookup(BaseModel):
    contract_number: str
    auth_key: str


@dataclass
class _Store:
    token: str = field(repr=False)
    issuer_token: str = field(default=LOCAL_ISSUER_TOKEN, repr=False)
    issued: dict[str, IssuedCertificate] = field(default_factory=dict)

    def issue(self, certificate: SuretyCertificate, auth_key: str | None = None
              ) -> IssuedCertificate:
        key = auth_key or "".join(secrets.choice(_KEY_ALPHABET) for _ in range(12))
        issued = IssuedCertificate(certificate, key)
        self.issued[certificate.contract_number] = issued
        return issued


def _bearer_is(authorization: str, token: str) -> bool:
    return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


def create_app(store: _Store, faults: PeerFaults) -> FastAPI:
    app = FastAPI(title="Reference D・Sure", docs_url=None, redoc_url=None)
    install_faults(app, faults)

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/certificates/lookup")
    async def lookup(body: _Lookup, authorization: str = Header(default="")) -> JSONResponse:
        if not _bearer_is(authorization, store.token):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        issued = store.issued.get(body.contract_number)
        if issued is None:
            return JSONResponse({"error": "not-found"}, status_code=404)
        if not hmac.compare_digest(issued.auth_key.encode(), body.auth_key.encode()):
            return JSONResponse({"error": "key-mismatch"}, status_code=403)
        return JSONResponse({"certificate": certificate_to_peer(issued.certificate)})

    @app.post("/api/v1/issuer/certificates", status_code=201)
    async def publish(request: Request, authorization: str = Header(default="")
                      ) -> JSONResponse:
        if not _bearer_is(authorization, store.issuer_token):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            certificate = SuretyCertificate.model_validate_json(await request.body(),
                                                                strict=False)
        except ValidationError as exc:
            return JSONResponse({"error": "invalid", "detail": exc.errors(
                include_url=False, include_context=False, include_input=False)},
                status_code=422)
        issued = store.issue(certificate)
        return JSONResponse({"contract_number": certificate.contract_number,
                             "auth_key": issued.auth_key}, status_code=201)

    return app


class DSurePeer:
    """The reference D・Sure on a loopback port: issue certificates, then look them up."""

    def __init__(self, *, token: str, port: int | None = None,
                 issuer_token: str = LOCAL_ISSUER_TOKEN) -> None:
        self.faults = PeerFaults()
        self._store = _Store(token=token, issuer_token=issuer_token)
        self._server = LoopbackServer(create_app(self._store, self.faults), port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def issue(self, certificate: SuretyCertificate, auth_key: str | None = None
              ) -> IssuedCertificate:
        """Publish ``certificate`` on D・Sure with a fresh (or given) 認証キー."""
        return self._store.issue(certificate, auth_key)


def main() -> None:
    """``python -m connectors.dsure.peer``: the local default on ``HUB_DSURE_BASE_URL``,
    holding seed 002's certificate (31072-0001M, key Z28YUE4J3Bux); surety companies
    publish with ``HUB_DSURE_ISSUER_TOKEN`` (default: the local one)."""
    settings = DSureSettings()
    peer = DSurePeer(token=settings.api_token.get_secret_value(),
                     port=urlparse(settings.base_url).port,
                     issuer_token=DSurePeerSettings().issuer_token.get_secret_value())
    peer.issue(seed_certificate(), auth_key="Z28YUE4J3Bux")
    serve_forever(peer)


if __name__ == "__main__":
    main()
