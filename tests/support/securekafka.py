"""The secured broker of the tests (``deploy/kafka.sh --secure``): SASL_SSL with
SCRAM-SHA-512 and ACLs. deploy/test.sh starts it and sets ``HUB_TEST_KAFKA_SECURE`` (its
bootstrap) and ``HUB_TEST_KAFKA_SECURE_DIR`` (its directory: ``tls/ca.pem`` and
``credentials/<user>.password``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from hub.settings import KafkaSettings
from tests.support.hubproc import ROOT

SECURE_BOOTSTRAP = os.environ.get("HUB_TEST_KAFKA_SECURE", "127.0.0.1:9192")
SECURE_DIR = Path(os.environ.get("HUB_TEST_KAFKA_SECURE_DIR",
                                 ROOT / ".run" / "kafka-secure"))


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    directory: Path

    @property
    def cafile(self) -> Path:
        return self.directory / "tls" / "ca.pem"

    def password(self, user: str) -> str:
        return (self.directory / "credentials" / f"{user}.password").read_text().strip()

    def settings(self, user: str, password: str | None = None, **kw: object) -> KafkaSettings:
        """A principal's client settings: SASL_SSL, SCRAM-SHA-512, the broker's CA."""
        return KafkaSettings(
            bootstrap_servers=self.bootstrap, security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512", sasl_username=user,
            sasl_password=SecretStr(password if password is not None else self.password(user)),
            ssl_cafile=self.cafile, **kw)  # type: ignore[arg-type]

    def hub_env(self, user: str = "hub") -> dict[str, str]:
        """The environment that points a `hub` process at this broker as ``user``."""
        return {"HUB_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "HUB_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "HUB_KAFKA__SASL_USERNAME": user,
                "HUB_KAFKA__SASL_PASSWORD": self.password(user),
                "HUB_KAFKA__SSL_CAFILE": str(self.cafile)}
