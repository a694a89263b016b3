"""The production check: what ``hub run`` refuses to start with (HUB_PROFILE=production).

The embedded defaults make ``hub demo`` and the tests run on one machine with nothing
configured: a test PKI, a SoftHSM2 token, known secrets, plain HTTP to loopback peers and
PLAINTEXT Kafka. In production each of those is a hole, so :func:`production_problems`
lists every one that the settings would leave open, and ``hub run`` (profile
``production``, the default) prints them all and exits with :data:`EXIT_CONFIG` before it
opens anything. Each :class:`Problem` names its check (PRD-1 … PRD-6, docs/security.md),
the settings to change, and what to do, in Japanese and English; none shows a secret's
value, only its name. The ``demo`` and ``test`` profiles log the same list once, as
what is for testing only (:func:`demo_banner`).

Secrets may also come from files (Docker secrets, systemd credentials): for each name of
:data:`SECRET_SETTINGS`, ``<NAME>_FILE`` names a file whose content (one trailing newline
dropped) is the value (:func:`load_secret_files`, run by the CLI before settings load).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors._shared.settings import run_dir
from hub.settings import Settings

__all__ = [
    "EXIT_CONFIG",
    "KNOWN_DEFAULT_SECRETS",
    "MIN_SECRET_CHARS",
    "SECRET_SETTINGS",
    "Problem",
    "SecretFileError",
    "demo_banner",
    "load_secret_files",
    "production_problems",
    "refusal_text",
]

EXIT_CONFIG = 78
"""sysexits' EX_CONFIG: the configuration is unusable."""

MIN_SECRET_CHARS = 32
"""Secrets the city chooses itself (webhook secrets, link keys, path tokens)."""

KNOWN_DEFAULT_SECRETS = frozenset({
    "local-application-token", "local-application-webhook", "local-dsure-token",
    "local-cloudsign-client", "local-cloudsign-webhook-token", "local-surety-issuer",
    "change-me-local-default-only",
    "procurement-hub embedded demo id key: public, never for production",
    "change-me", "changeme", "secret", "password", "test", "demo",
})
"""The embedded defaults and the usual placeholders: refused whatever their length."""

SECRET_SETTINGS = (
    "HUB_APPLICATION_WEBHOOK_SECRET", "HUB_APPLICATION_API_TOKEN", "HUB_DSURE_API_TOKEN",
    "HUB_CLOUDSIGN_CLIENT_ID", "HUB_CLOUDSIGN_WEBHOOK_TOKEN", "HUB_MAIL_LINK_KEY",
    "HUB_MAIL_PASSWORD", "HUB_ERP_PASSWORD", "HUB_CITYSIGNER_PIN", "HUB_FIELD_KEYS",
    "HUB_KAFKA__SASL_PASSWORD", "HUB_DATABASE_URL", "HUB_STAFF__TOKEN_SHA256", "HUB_ID_KEY",
)
"""Settings that may be given as ``<NAME>_FILE`` (a path) instead of the value."""

_TEST_PKI_NAMES = ("Procurement Hub Test PKI", "Hub Test ", "Other Test ")
"""What the project's test PKI puts in its names (devkit/pki.py)."""


@dataclass(frozen=True)
class Problem:
    """One reason not to start: the check, the settings concerned, what to do."""

    check: str
    settings: tuple[str, ...]
    message_ja: str
    message_en: str

    def __str__(self) -> str:
        return (f"{self.check} [{', '.join(self.settings)}]\n"
                f"    {self.message_ja}\n    {self.message_en}")


class SecretFileError(ValueError):
    """A ``*_FILE`` setting that cannot be used; the message names the setting only."""


def load_secret_files(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Read every ``<NAME>_FILE`` of :data:`SECRET_SETTINGS` into ``<NAME>``; the names set.

    Refused: both the value and its file given, or a file that cannot be read."""
    env = os.environ if environ is None else environ
    loaded = []
    for name in SECRET_SETTINGS:
        path = env.get(f"{name}_FILE")
        if not path:
            continue
        if env.get(name):
            raise SecretFileError(f"{name} and {name}_FILE are both set: keep one")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretFileError(f"{name}_FILE cannot be read ({type(exc).__name__})") from None
        env[name] = text[:-1] if text.endswith("\n") else text
        loaded.append(name)
    return loaded


def _secret_problem(name: str, value: str | None, *, chosen_by_city: bool) -> Problem | None:
    """A default, empty or (for the city's own secrets) short secret; never its value."""
    if not value:
        return Problem("PRD-3", (name,), f"{name} が設定されていません（既定値のままです）。",
                       f"{name} is not set (the embedded default would be used).")
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS or value.startswith("change-me"):
        return Problem("PRD-3", (name,),
                       f"{name} が既定値または公知の値です。推測できない値に変えてください。",
                       f"{name} is a default or well-known value: set an unguessable one.")
    if chosen_by_city and len(value) < MIN_SECRET_CHARS:
        return Problem("PRD-3", (name,),
                       f"{name} が短すぎます（{MIN_SECRET_CHARS} 文字以上の乱数にしてください。"
                       "例: openssl rand -base64 33）。",
                       f"{name} is shorter than {MIN_SECRET_CHARS} characters: use a random "
                       "value (e.g. openssl rand -base64 33).")
    return None


def _secret(model: Any, attr: str) -> str | None:
    value = getattr(model, attr, None)
    if value is None:
        return None
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _is_test_pki(paths: Iterable[Path]) -> bool:
    from cryptography import x509

    pki_dir = (run_dir() / "pki").resolve()
    for path in paths:
        resolved = Path(path).resolve()
        if resolved.is_relative_to(pki_dir):
            return True
        try:
            certs = x509.load_pem_x509_certificates(resolved.read_bytes())
        except (OSError, ValueError):
            continue  # the gateway's own loading reports unreadable files
        for cert in certs:
            names = cert.subject.rfc4514_string() + cert.issuer.rfc4514_string()
            if any(marker in names for marker in _TEST_PKI_NAMES):
                return True
    return False


def _card_roots_problems() -> list[Problem]:
    from hub.gateway.wiring import GatewaySettings

    gateway = GatewaySettings()
    if not gateway.card_roots:
        return [Problem("PRD-1", ("HUB_GATEWAY_CARD_ROOTS",),
                        "HUB_GATEWAY_CARD_ROOTS が未設定です。このままではテスト用認証基盤の"
                        "ICカードを信頼します。認証局のルート証明書（PEM）を指定してください。",
                        "HUB_GATEWAY_CARD_ROOTS is not set: the hub would trust the project's "
                        "test PKI for contractor cards. Name your card CAs' root certificates "
                        "(PEM files).")]
    missing = [str(p) for p in gateway.card_roots + gateway.signature_roots if not p.is_file()]
    if missing:
        return [Problem("PRD-1", ("HUB_GATEWAY_CARD_ROOTS", "HUB_GATEWAY_SIGNATURE_ROOTS"),
                        f"ルート証明書のファイルが見つかりません: {', '.join(missing)}",
                        f"Root certificate files not found: {', '.join(missing)}.")]
    if _is_test_pki(gateway.card_roots + gateway.signature_roots):
        return [Problem("PRD-1", ("HUB_GATEWAY_CARD_ROOTS", "HUB_GATEWAY_SIGNATURE_ROOTS"),
                        "カードのルート証明書にテスト用認証基盤の証明書が含まれています。"
                        "本番の認証局のルート証明書だけを指定してください。",
                        "The card roots include the project's test PKI: name only your "
                        "production card CAs' roots.")]
    return []


def _city_signer_problems(environ: Mapping[str, str], settings: Settings) -> list[Problem]:
    from connectors.citysigner import CitySignerSettings

    own = {code: e.signer for code, e in settings.entities.items() if e.signer is not None}
    if own:  # each entity signs with its own token (docs/identity.md): check each of them
        return [p for code, s in sorted(own.items()) for p in _test_signer(
            environ, s.chain + s.trust_roots, (f"entities.{code}.signer.chain",
                                               f"entities.{code}.signer.trust_roots",
                                               "SOFTHSM2_CONF"))]
    signer = CitySignerSettings()
    if not signer.pin.get_secret_value():
        return [Problem("PRD-2", ("HUB_CITYSIGNER_PIN", "HUB_CITYSIGNER_MODULE"),
                        "市の署名トークンが設定されていません。このままではテスト用の SoftHSM2 "
                        "トークンとテスト用の鍵で市として署名します。HSM または署名用カードの "
                        "PKCS#11 モジュール・トークン・PIN を設定してください。",
                        "No city signing token is configured: the hub would sign for the city "
                        "with the SoftHSM2 test token and a test key. Set the PKCS#11 module, "
                        "token and PIN of the city's HSM or signing card.")]
    return _test_signer(environ, signer.chain + signer.trust_roots,
                        ("HUB_CITYSIGNER_CHAIN", "HUB_CITYSIGNER_TRUST_ROOTS", "SOFTHSM2_CONF"))


def _test_signer(environ: Mapping[str, str], certificates: tuple[Path, ...],
                 names: tuple[str, ...]) -> list[Problem]:
    """PRD-2: a signer whose certificates are the test PKI's or whose token is the embedded
    default's SoftHSM2 directory."""
    conf = environ.get("SOFTHSM2_CONF", "")
    softhsm_dir = (run_dir() / "softhsm").resolve()
    if _is_test_pki(certificates) or (conf and Path(conf).resolve().is_relative_to(softhsm_dir)):
        return [Problem("PRD-2", names,
                        "市の署名にテスト用認証基盤（またはテスト用 SoftHSM2 トークン）が"
                        "使われています。本番の署名鍵と証明書チェーンを設定してください。",
                        "The city's signer uses the project's test PKI or its SoftHSM2 test "
                        "token: configure the production signing key and chain.")]
    return []


def _secrets_problems(settings: Settings) -> list[Problem]:
    from connectors.application.settings import ApplicationSettings
    from connectors.cloudsign.settings import CloudSignSettings
    from connectors.dsure.settings import DSureSettings
    from connectors.erp.settings import ErpSettings
    from connectors.mail.settings import MailSettings

    application, cloudsign, mail, erp = (ApplicationSettings(), CloudSignSettings(),
                                         MailSettings(), ErpSettings())
    chosen = [  # the city makes these up: long and random
        ("HUB_APPLICATION_WEBHOOK_SECRET", _secret(application, "webhook_secret")),
        ("HUB_MAIL_LINK_KEY", _secret(mail, "link_key")),
        ("HUB_ID_KEY", _secret(settings, "id_key")),
    ]
    if hasattr(cloudsign, "webhook_token"):
        chosen.append(("HUB_CLOUDSIGN_WEBHOOK_TOKEN", _secret(cloudsign, "webhook_token")))
    own = _own_kinds(settings)
    issued = [  # a peer issues these: not the default, not empty
        ("HUB_APPLICATION_API_TOKEN", _secret(application, "api_token")),
    ]
    if "dsure" not in own:
        issued.append(("HUB_DSURE_API_TOKEN", _secret(DSureSettings(), "api_token")))
    if "cloudsign" not in own:
        issued.append(("HUB_CLOUDSIGN_CLIENT_ID", _secret(cloudsign, "client_id")))
    if mail.username and "mail" not in own:
        issued.append(("HUB_MAIL_PASSWORD", _secret(mail, "password")))
    if erp.username and "erp" not in own:
        issued.append(("HUB_ERP_PASSWORD", _secret(erp, "password")))
    for code, entity in sorted(settings.entities.items()):  # each entity's own credentials
        for kind, field in (("dsure", "api_token"), ("cloudsign", "client_id"),
                            ("erp", "password"), ("mail", "password")):
            part = getattr(entity, kind)
            if part is not None and (field != "password" or part.username):
                issued.append((f"entities.{code}.{kind}.{field}", _secret(part, field)))
    found = [p for name, value in chosen
             if (p := _secret_problem(name, value, chosen_by_city=True))]
    found += [p for name, value in issued
              if (p := _secret_problem(name, value, chosen_by_city=False))]
    if not settings.staff.token_sha256 and settings.staff.token_file is None:
        found.append(Problem("PRD-3", ("HUB_STAFF__TOKEN_SHA256", "HUB_STAFF__TOKEN_FILE"),
                             "職員用 API トークンが設定されていません（既定ではトークンを生成して"
                             "実行ディレクトリに置きます）。発行したトークンの SHA-256 を設定して"
                             "ください。",
                             "No staff API token is configured (the embedded default generates "
                             "one into the run directory): set the SHA-256 digests of the tokens "
                             "you issue."))
    keys = settings.field_keys.get_secret_value() if settings.field_keys else None
    from schemas.sealed import DEMO_FIELD_KEYS, parse_field_keys

    if not keys or keys == DEMO_FIELD_KEYS:
        found.append(Problem("PRD-3", ("HUB_FIELD_KEYS",),
                             "HUB_FIELD_KEYS が未設定です。認証キーを Kafka 上で公開のデモ鍵で"
                             "暗号化することになります。32 バイトの乱数鍵を設定してください。",
                             "HUB_FIELD_KEYS is not set: the 認証キー would be sealed on Kafka "
                             "with the public demo key. Set a random 32-byte key "
                             "(kid=base64url; docs/security.md)."))
    else:
        try:
            parse_field_keys(keys)
        except ValueError as exc:
            found.append(Problem("PRD-3", ("HUB_FIELD_KEYS",),
                                 f"HUB_FIELD_KEYS の形式が正しくありません: {exc}",
                                 f"HUB_FIELD_KEYS is malformed: {exc}"))
    return found


def _own_kinds(settings: Settings) -> set[str]:
    """The kinds of connector each procuring entity has of its own (docs/identity.md): the
    installation's settings of those kinds are not used, the entities' are checked."""
    return {kind for kind in ("erp", "mail", "cloudsign", "dsure")
            if any(getattr(e, kind) is not None for e in settings.entities.values())}


def _plain(url: str) -> bool:
    return urlsplit(url).scheme.lower() != "https"


def _peer_problems(settings: Settings) -> list[Problem]:
    from connectors.application.settings import ApplicationSettings
    from connectors.cloudsign.settings import CloudSignSettings
    from connectors.dsure.settings import DSureSettings
    from connectors.erp.settings import ErpSettings
    from connectors.mail.settings import MailSettings
    from connectors.tsa.settings import TsaSettings

    mail = MailSettings()
    own = _own_kinds(settings)
    urls = [
        ("application", "HUB_APPLICATION_BASE_URL", ApplicationSettings().base_url),
        ("dsure", "HUB_DSURE_BASE_URL", DSureSettings().base_url),
        ("cloudsign", "HUB_CLOUDSIGN_BASE_URL", CloudSignSettings().base_url),
        ("erp", "HUB_ERP_URL", ErpSettings().url),
        ("tsa", "HUB_TSA_URL", TsaSettings().url),
        ("mail-links", "HUB_MAIL_DOCUMENTS_BASE_URL", mail.documents_base_url),
        ("review-links", "HUB_CONTRACT__REVIEW_BASE_URL",
         settings.contract.review_base_url or "http://(the hub's own address)"),
    ]
    urls = [u for u in urls if u[0] not in own]  # each entity's own instead (below)
    for code, entity in sorted(settings.entities.items()):
        for kind, field in (("dsure", "base_url"), ("cloudsign", "base_url"), ("erp", "url")):
            part = getattr(entity, kind)
            if part is not None:
                urls.append((kind, f"entities.{code}.{kind}.{field}", getattr(part, field)))
    allowed = set(settings.insecure_plain_http_peers)
    found = []
    for peer, name, url in urls:
        if _plain(url) and peer not in allowed:
            found.append(Problem("PRD-4", (name,),
                                 f"{name} が https:// ではありません（{peer}）。"
                                 "通信が暗号化されず、パスワードや文書が平文で流れます。"
                                 "https:// の URL にしてください"
                                 "（危険を承知で許す場合のみ HUB_INSECURE_PLAIN_HTTP_PEERS に "
                                 f"{peer} を加えます）。",
                                 f"{name} is not https:// ({peer}): credentials and documents "
                                 "would travel in clear. Use an https:// URL (or, accepting the "
                                 f"risk, add {peer} to HUB_INSECURE_PLAIN_HTTP_PEERS)."))
    if "mail" in own:
        plain_mail = [f"entities.{code}.mail.security" for code, e in sorted(
            settings.entities.items()) if e.mail is not None and e.mail.security == "none"]
    else:
        plain_mail = ["HUB_MAIL_SECURITY"] if mail.security == "none" else []
    if "smtp" not in allowed:
        found.extend(Problem("PRD-4", (name,),
                             f"SMTP が暗号化されていません。{name} を starttls か tls に"
                             "してください（危険を承知で許す場合のみ HUB_INSECURE_PLAIN_HTTP_PEERS"
                             " に smtp を加えます）。",
                             f"SMTP is not encrypted: set {name} to starttls or tls "
                             "(or, accepting the risk, add smtp to "
                             "HUB_INSECURE_PLAIN_HTTP_PEERS).") for name in plain_mail)
    return found


def _kafka_problems(settings: Settings) -> list[Problem]:
    k = settings.kafka
    if k.security_protocol == "SASL_SSL":
        if k.sasl_username and k.sasl_password and k.sasl_password.get_secret_value():
            return []
        return [Problem("PRD-5", ("HUB_KAFKA__SASL_USERNAME", "HUB_KAFKA__SASL_PASSWORD"),
                        "Kafka の SASL ユーザー名またはパスワードが設定されていません。",
                        "The Kafka SASL user name or password is not set.")]
    if k.security_protocol == "SSL" and k.ssl_certfile is not None:
        return []
    return [Problem("PRD-5", ("HUB_KAFKA__SECURITY_PROTOCOL",),
                    f"Kafka への接続が {k.security_protocol} です。TLS と認証なしでは誰でも"
                    "トピックを読み書きできます。SASL_SSL（SCRAM-SHA-512）か、クライアント"
                    "証明書付きの SSL にしてください。",
                    f"Kafka is reached over {k.security_protocol}: without TLS and "
                    "authentication anyone on the network reads and writes the topics. Use "
                    "SASL_SSL (SCRAM-SHA-512) or SSL with a client certificate "
                    "(HUB_KAFKA__SSL_CERTFILE).")]


def _own_http_problems(settings: Settings) -> list[Problem]:
    """PRD-6: passwords, card proofs and review links reach the hub over its own HTTP; it
    serves TLS itself, or sits behind a TLS-terminating proxy the operator names."""
    http = settings.http
    if http.tls or http.forwarded_allow_ips:
        return []
    return [Problem("PRD-6", ("HUB_HTTP__TLS_CERT_FILE", "HUB_HTTP__TLS_KEY_FILE",
                              "HUB_HTTP__FORWARDED_ALLOW_IPS"),
                    "ハブの HTTP（ゲートウェイ、職員 API、確認ページ、Webhook）が TLS なしです。"
                    "証明書と鍵を設定するか、TLS を終端するプロキシのアドレスを "
                    "HUB_HTTP__FORWARDED_ALLOW_IPS に設定してください。",
                    "The hub's own HTTP (gateway, staff API, review pages, webhooks) has no "
                    "TLS: set the certificate and key, or name the TLS-terminating proxy in "
                    "HUB_HTTP__FORWARDED_ALLOW_IPS.")]


def _insecure_names_problems(settings: Settings) -> list[Problem]:
    known = {"application", "dsure", "cloudsign", "erp", "tsa", "mail-links",
             "review-links", "smtp"}
    unknown = sorted(set(settings.insecure_plain_http_peers) - known)
    if not unknown:
        return []
    return [Problem("PRD-4", ("HUB_INSECURE_PLAIN_HTTP_PEERS",),
                    f"HUB_INSECURE_PLAIN_HTTP_PEERS に不明な名前があります: {', '.join(unknown)}",
                    f"HUB_INSECURE_PLAIN_HTTP_PEERS names unknown peers: {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(known))}).")]


def production_problems(settings: Settings,
                        environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Every reason the settings are not fit for production (empty: fit).

    PRD-1 contractor cards' trust, PRD-2 the city's signer, PRD-3 secrets, PRD-4 plain
    HTTP and SMTP to peers, PRD-5 Kafka without TLS and authentication, PRD-6 the hub's
    own HTTP without TLS."""
    env = os.environ if environ is None else environ
    return [*_card_roots_problems(), *_city_signer_problems(env, settings),
            *_secrets_problems(settings),
            *_peer_problems(settings), *_insecure_names_problems(settings),
            *_kafka_problems(settings), *_own_http_problems(settings)]


def refusal_text(problems: list[Problem]) -> str:
    """What ``hub run`` prints when it refuses to start in production."""
    head = (f"hub run: 本番モード（HUB_PROFILE=production）では起動できません。"
            f"問題 {len(problems)} 件 / refusing to start in production mode "
            f"(HUB_PROFILE=production): {len(problems)} problem(s).")
    tail = ("設定を直すか、試験用に HUB_PROFILE=demo で起動してください（docs/security.md"
            "「Running in production」）。\nFix the settings above, or run with HUB_PROFILE=demo "
            "for testing only (docs/security.md, 'Running in production').")
    return "\n".join([head, *(f"  {n}. {p}" for n, p in enumerate(problems, 1)), tail])


def demo_banner(profile: str, problems: list[Problem]) -> str:
    """The loud block the demo and test profiles log once at start."""
    bar = "!" * 78
    lines = [bar, f"!! HUB_PROFILE={profile}: 試験専用の設定で動いています / running on "
             "settings for TESTING ONLY.", "!! 本番では起動を拒否される項目 / what production "
             "would refuse:"]
    lines += [f"!!   {p.check} {', '.join(p.settings)}: {p.message_en}" for p in problems]
    lines += ["!! Never expose this hub to a network or real data (docs/security.md).", bar]
    return "\n".join(lines)
