"""Settings from the environment or a TOML file; logs that carry the case and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from connectors.dsure.settings import DSurePeerSettings
from hub.bootstrap import policy_book
from hub.logs import correlation, redact_text, setup_logging
from hub.settings import Settings
from pipelines.registration.policy import PolicyError, default_policy_book


def test_defaults_are_the_embedded_local_setup() -> None:
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.database_url.get_secret_value().startswith("sqlite:///")


def test_environment_and_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('database_url = "postgresql+psycopg://hub:pw@db/hub"\n'
                    '[kafka]\nbootstrap_servers = "k1:9093,k2:9093"\n'
                    'security_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-512"\n'
                    'sasl_username = "hub"\nsasl_password = "kafka-secret"\n')
    monkeypatch.setenv("HUB_SETTINGS_FILE", str(toml))
    monkeypatch.setenv("HUB_RETRY__MAX_ATTEMPTS", "8")
    s = Settings()
    assert s.kafka.bootstrap_servers == "k1:9093,k2:9093"
    assert s.retry.max_attempts == 8
    kwargs = s.kafka.aiokafka_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "kafka-secret"
    assert "ssl_context" in kwargs
    # The environment beats the file; secrets do not print.
    monkeypatch.setenv("HUB_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    s = Settings()
    assert s.kafka.bootstrap_servers == "env:9092"
    assert "kafka-secret" not in repr(s)
    assert "pw@" not in repr(s)


def test_the_settings_the_pipelines_and_peers_take_keep_their_names(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Read through pydantic-settings, under the names they always had; the wiring builds
    the registration policy from the file named, the packaged default without one."""
    assert Settings().propagation_interval_s == 300
    assert policy_book(Settings()) is default_policy_book()
    broken = tmp_path / "policy.toml"
    broken.write_text("[[entity]\n", encoding="utf-8")
    monkeypatch.setenv("HUB_REGISTRATION_POLICY", str(broken))
    monkeypatch.setenv("HUB_PROPAGATION_INTERVAL_S", "42")
    monkeypatch.setenv("HUB_STAFF_TOKEN", "a staff token")
    monkeypatch.setenv("HUB_DSURE_ISSUER_TOKEN", "an issuer token")
    s = Settings()
    assert (s.registration_policy, s.propagation_interval_s) == (broken, 42)
    assert s.staff_token is not None
    assert s.staff_token.get_secret_value() == "a staff token"
    assert "a staff token" not in repr(s)
    with pytest.raises(PolicyError, match="not valid TOML"):
        policy_book(s)
    assert DSurePeerSettings().issuer_token.get_secret_value() == "an issuer token"


@pytest.mark.parametrize("text", [
    "VERIFY failed, pin=123456 retries 2",
    "password: hunter22",
    "connecting to postgresql://hub:hunter22@db:5432/hub",
    "暗証番号=123456",
    "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----",
    '{"api_key": "sk-abc123"}',
])
def test_secrets_are_masked(text: str) -> None:
    masked = redact_text(text)
    for secret in ("123456", "hunter22", "MIIEv", "sk-abc123"):
        assert secret not in masked


def test_json_logs_carry_the_correlation_id_and_mask_secrets(
        capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "json")
    token = correlation.set("R8-0042")
    try:
        logging.getLogger("hub.test").info("card login with pin=%s", "9876")
    finally:
        correlation.reset(token)
        setup_logging("WARNING", "text")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["correlation_id"] == "R8-0042"
    assert "9876" not in line["msg"]
    assert line["level"] == "info"
