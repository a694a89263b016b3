"""The production check (hub/production.py): one problem per unsafe default, all at once.

A settings set fit for production passes; taking away one thing at a time brings exactly
its check back (PRD-1 … PRD-6), named by setting, in Japanese and English, without the
secret's value. ``hub run`` with nothing configured refuses to start (a real process).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.production import (
    EXIT_CONFIG,
    SecretFileError,
    demo_banner,
    load_secret_files,
    production_problems,
    refusal_text,
)
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _root_pem(path: Path, common_name: str, organization: str = "City of Example") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _strong() -> str:
    return secrets.token_urlsafe(33)


@pytest.fixture
def ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """An environment fit for production; returns its secret values."""
    for name in list(os.environ):
        if name.startswith("HUB_") and not name.startswith("HUB_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("SOFTHSM2_CONF", raising=False)
    monkeypatch.setenv("HUB_RUN_DIR", str(tmp_path / "run"))
    values = {
        "HUB_APPLICATION_WEBHOOK_SECRET": _strong(), "HUB_MAIL_LINK_KEY": _strong(),
        "HUB_CLOUDSIGN_WEBHOOK_TOKEN": _strong(), "HUB_APPLICATION_API_TOKEN": _strong(),
        "HUB_DSURE_API_TOKEN": _strong(), "HUB_CLOUDSIGN_CLIENT_ID": _strong(),
        "HUB_CITYSIGNER_PIN": "73915026", "HUB_KAFKA__SASL_PASSWORD": _strong(),
        "HUB_ID_KEY": _strong(),
        "HUB_FIELD_KEYS": "k1=" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
    }
    env = {
        **values,
        "HUB_GATEWAY_CARD_ROOTS": f'["{_root_pem(tmp_path / "card-root.pem", "Card Root")}"]',
        "HUB_CITYSIGNER_MODULE": "/usr/lib/city-hsm/pkcs11.so",
        "HUB_STAFF__TOKEN_SHA256": f'["{secrets.token_hex(32)}"]',
        "HUB_APPLICATION_BASE_URL": "https://apply.example.jp/",
        "HUB_DSURE_BASE_URL": "https://dsure.example.jp/",
        "HUB_CLOUDSIGN_BASE_URL": "https://api.cloudsign.example.jp/",
        "HUB_ERP_URL": "https://erp.city.example.jp/soap",
        "HUB_TSA_URL": "https://tsa.example.jp/tsa",
        "HUB_MAIL_DOCUMENTS_BASE_URL": "https://hub.city.example.jp/documents",
        "HUB_MAIL_SECURITY": "tls",
        "HUB_CONTRACT__REVIEW_BASE_URL": "https://hub.city.example.jp/contract/review",
        "HUB_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "HUB_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "HUB_KAFKA__SASL_USERNAME": "hub",
        "HUB_HTTP__TLS_CERT_FILE": str(tmp_path / "hub.pem"),
        "HUB_HTTP__TLS_KEY_FILE": str(tmp_path / "hub.key"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return values


def _checks(monkeypatch: pytest.MonkeyPatch,
            **env: str | None) -> list[tuple[str, tuple[str, ...]]]:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return [(p.check, p.settings) for p in production_problems(Settings())]


def test_production_ready_settings_pass(ready: dict[str, str]) -> None:
    assert production_problems(Settings()) == []


def test_card_roots_unset_or_test_pki_are_refused(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _checks(monkeypatch, HUB_GATEWAY_CARD_ROOTS=None) == [
        ("PRD-1", ("HUB_GATEWAY_CARD_ROOTS",))]
    test_root = _root_pem(tmp_path / "looks-fine.pem", "Hub Test Root CA",
                          "Procurement Hub Test PKI")
    assert [c for c, _ in _checks(monkeypatch, HUB_GATEWAY_CARD_ROOTS=f'["{test_root}"]')] == [
        "PRD-1"]
    assert _checks(monkeypatch, HUB_GATEWAY_CARD_ROOTS=f'["{tmp_path / "gone.pem"}"]') == [
        ("PRD-1", ("HUB_GATEWAY_CARD_ROOTS", "HUB_GATEWAY_SIGNATURE_ROOTS"))]
    in_run_pki = tmp_path / "run" / "pki"
    in_run_pki.mkdir(parents=True)
    copied = _root_pem(in_run_pki / "root.pem", "Anything")
    assert [c for c, _ in _checks(monkeypatch, HUB_GATEWAY_CARD_ROOTS=f'["{copied}"]')] == [
        "PRD-1"]


def test_signing_with_the_test_token_is_refused(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert [c for c, _ in _checks(monkeypatch, HUB_CITYSIGNER_PIN=None)] == ["PRD-2"]
    conf = tmp_path / "run" / "softhsm" / "softhsm2.conf"
    assert [c for c, _ in _checks(monkeypatch, HUB_CITYSIGNER_PIN="73915026",
                                  SOFTHSM2_CONF=str(conf))] == ["PRD-2"]


@pytest.mark.parametrize("name", ["HUB_APPLICATION_WEBHOOK_SECRET", "HUB_MAIL_LINK_KEY",
                                  "HUB_ID_KEY"])
@pytest.mark.parametrize("value", [None, "local-application-webhook",
                                   "change-me-local-default-only", "short-but-random-9f3k"])
def test_default_or_short_city_secrets_are_refused(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str,
        value: str | None) -> None:
    checks = _checks(monkeypatch, **{name: value})
    assert checks == [("PRD-3", (name,))]
    text = refusal_text(production_problems(Settings()))
    if value:
        assert value not in text


@pytest.mark.parametrize("name", ["HUB_APPLICATION_API_TOKEN", "HUB_DSURE_API_TOKEN",
                                  "HUB_CLOUDSIGN_CLIENT_ID"])
def test_default_peer_credentials_are_refused(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    assert _checks(monkeypatch, **{name: None}) == [("PRD-3", (name,))]


def test_staff_tokens_and_field_keys_are_required(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _checks(monkeypatch, HUB_STAFF__TOKEN_SHA256=None) == [
        ("PRD-3", ("HUB_STAFF__TOKEN_SHA256", "HUB_STAFF__TOKEN_FILE"))]
    monkeypatch.setenv("HUB_STAFF__TOKEN_SHA256", f'["{secrets.token_hex(32)}"]')
    assert _checks(monkeypatch, HUB_FIELD_KEYS=None) == [("PRD-3", ("HUB_FIELD_KEYS",))]
    assert _checks(monkeypatch, HUB_FIELD_KEYS="k1=dG9vLXNob3J0") == [
        ("PRD-3", ("HUB_FIELD_KEYS",))]


@pytest.mark.parametrize(("name", "peer"), [
    ("HUB_APPLICATION_BASE_URL", "application"), ("HUB_DSURE_BASE_URL", "dsure"),
    ("HUB_CLOUDSIGN_BASE_URL", "cloudsign"), ("HUB_ERP_URL", "erp"), ("HUB_TSA_URL", "tsa"),
    ("HUB_MAIL_DOCUMENTS_BASE_URL", "mail-links"),
    ("HUB_CONTRACT__REVIEW_BASE_URL", "review-links")])
def test_plain_http_peers_are_refused_unless_the_risk_is_named(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str, peer: str) -> None:
    plain = "http://127.0.0.1:8099/x"
    assert _checks(monkeypatch, **{name: plain}) == [("PRD-4", (name,))]
    assert _checks(monkeypatch, HUB_INSECURE_PLAIN_HTTP_PEERS=f'["{peer}"]') == []
    assert _checks(monkeypatch, HUB_INSECURE_PLAIN_HTTP_PEERS='["nobody"]') == [
        ("PRD-4", (name,)), ("PRD-4", ("HUB_INSECURE_PLAIN_HTTP_PEERS",))]


def test_plain_smtp_is_refused(ready: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _checks(monkeypatch, HUB_MAIL_SECURITY="none") == [("PRD-4", ("HUB_MAIL_SECURITY",))]
    assert _checks(monkeypatch, HUB_INSECURE_PLAIN_HTTP_PEERS='["smtp"]') == []


def test_kafka_needs_tls_and_authentication(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL"):
        assert [c for c, _ in _checks(monkeypatch, HUB_KAFKA__SECURITY_PROTOCOL=protocol)] == [
            "PRD-5"]
    assert _checks(monkeypatch, HUB_KAFKA__SSL_CERTFILE=str(tmp_path / "client.pem")) == []
    assert [c for c, _ in _checks(monkeypatch, HUB_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
                                  HUB_KAFKA__SASL_PASSWORD=None)] == ["PRD-5"]


def test_the_hubs_own_http_needs_tls_or_a_named_proxy(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _checks(monkeypatch, HUB_HTTP__TLS_CERT_FILE=None, HUB_HTTP__TLS_KEY_FILE=None) == [
        ("PRD-6", ("HUB_HTTP__TLS_CERT_FILE", "HUB_HTTP__TLS_KEY_FILE",
                   "HUB_HTTP__FORWARDED_ALLOW_IPS"))]
    assert _checks(monkeypatch, HUB_HTTP__FORWARDED_ALLOW_IPS="10.0.0.5") == []


def test_secrets_from_files(tmp_path: Path) -> None:
    secret = _strong()
    (tmp_path / "webhook").write_text(secret + "\n")
    env = {"HUB_APPLICATION_WEBHOOK_SECRET_FILE": str(tmp_path / "webhook")}
    assert load_secret_files(env) == ["HUB_APPLICATION_WEBHOOK_SECRET"]
    assert env["HUB_APPLICATION_WEBHOOK_SECRET"] == secret
    with pytest.raises(SecretFileError, match="both set") as both:
        load_secret_files(env)
    assert secret not in str(both.value)
    with pytest.raises(SecretFileError, match="cannot be read"):
        load_secret_files({"HUB_FIELD_KEYS_FILE": str(tmp_path / "missing")})


def test_the_demo_banner_lists_what_is_for_testing(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_GATEWAY_CARD_ROOTS")
    banner = demo_banner("demo", production_problems(Settings()))
    assert "TESTING ONLY" in banner
    assert "PRD-1 HUB_GATEWAY_CARD_ROOTS" in banner


def test_hub_run_without_settings_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "SOFTHSM2"))}
    env |= {"HUB_RUN_DIR": str(tmp_path / "run"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_CONFIG, done.stderr
    out = done.stderr
    assert "refusing to start in production mode" in out
    assert "本番モード" in out
    for check, setting in [("PRD-1", "HUB_GATEWAY_CARD_ROOTS"), ("PRD-2", "HUB_CITYSIGNER_PIN"),
                           ("PRD-3", "HUB_APPLICATION_WEBHOOK_SECRET"),
                           ("PRD-3", "HUB_MAIL_LINK_KEY"), ("PRD-3", "HUB_FIELD_KEYS"),
                           ("PRD-3", "HUB_ID_KEY"),
                           ("PRD-4", "HUB_DSURE_BASE_URL"), ("PRD-4", "HUB_MAIL_SECURITY"),
                           ("PRD-5", "HUB_KAFKA__SECURITY_PROTOCOL"),
                           ("PRD-6", "HUB_HTTP__TLS_CERT_FILE")]:
        assert f"{check} [{setting}" in out, (check, setting)
    for default in ("local-application-webhook", "change-me-local-default-only",
                    "local-dsure-token", "local-cloudsign-client"):
        assert default not in out
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "hub.db").exists()  # refused before opening anything


def test_each_entitys_own_signer_is_checked_instead_of_the_installations(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With every entity signing with its own token, HUB_CITYSIGNER_* is not needed; an
    entity whose signer's roots are the test PKI is named."""
    from hub.settings import EntitySettings, EntitySignerSettings

    monkeypatch.delenv("HUB_CITYSIGNER_PIN")

    def entity(root: Path) -> EntitySettings:
        return EntitySettings(signer=EntitySignerSettings(
            module="/usr/lib/city-hsm/pkcs11.so", token_label="city", key_label="city",
            pin="73915026", trust_roots=(root,)))  # type: ignore[arg-type]

    city_root = _root_pem(tmp_path / "city-root.pem", "City Root")
    test_root = _root_pem(tmp_path / "test-root.pem", "Hub Test Root CA",
                          "Procurement Hub Test PKI")
    fine = Settings(entities={"kawagoe-city": entity(city_root),
                              "saitama-pref": entity(city_root)})
    assert production_problems(fine) == []
    one_test = Settings(entities={"kawagoe-city": entity(city_root),
                                  "saitama-pref": entity(test_root)})
    assert [(p.check, p.settings[0]) for p in production_problems(one_test)] == [
        ("PRD-2", "entities.saitama-pref.signer.chain")]


def test_each_entitys_own_peers_are_checked_instead_of_the_installations(
        ready: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With each entity's own ERP, mail sender, D・Sure and CloudSign, the installation's
    settings of those kinds are not needed (they are not used); each entity's URL, mail
    security and credentials are checked instead (PRD-3, PRD-4), named by the entity."""
    from hub.settings import (
        EntityCloudSignSettings,
        EntityDSureSettings,
        EntityErpSettings,
        EntityMailSettings,
        EntitySettings,
    )

    for name in ("HUB_DSURE_API_TOKEN", "HUB_CLOUDSIGN_CLIENT_ID", "HUB_ERP_URL",
                 "HUB_DSURE_BASE_URL", "HUB_CLOUDSIGN_BASE_URL", "HUB_MAIL_SECURITY"):
        monkeypatch.delenv(name)

    def entity(url: str, token: str, security: str) -> EntitySettings:
        return EntitySettings(
            erp=EntityErpSettings(url=f"{url}/erp/"),
            mail=EntityMailSettings(host="smtp.city.example.jp", security=security,  # type: ignore[arg-type]
                                    from_address="keiyaku@city.example.jp", from_name="市"),
            dsure=EntityDSureSettings(base_url=f"{url}/dsure", api_token=token),  # type: ignore[arg-type]
            cloudsign=EntityCloudSignSettings(base_url=f"{url}/cs", client_id=token))  # type: ignore[arg-type]

    fine = entity("https://kawagoe.example.jp", _strong(), "tls")
    assert production_problems(Settings(entities={"kawagoe-city": fine,
                                                  "saitama-pref": fine})) == []
    poor = entity("http://saitama.example.jp", "local-dsure-token", "none")
    found = [(p.check, p.settings) for p in production_problems(Settings(entities={
        "kawagoe-city": fine, "saitama-pref": poor}))]
    assert found == [
        ("PRD-3", ("entities.saitama-pref.dsure.api_token",)),
        ("PRD-3", ("entities.saitama-pref.cloudsign.client_id",)),
        ("PRD-4", ("entities.saitama-pref.dsure.base_url",)),
        ("PRD-4", ("entities.saitama-pref.cloudsign.base_url",)),
        ("PRD-4", ("entities.saitama-pref.erp.url",)),
        ("PRD-4", ("entities.saitama-pref.mail.security",))], found
