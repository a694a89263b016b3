"""Validators written by others, so that the hub's own checks do not judge themselves.

- :func:`asyncapi_problems`: the AsyncAPI 3.0.0 JSON Schema of the AsyncAPI Initiative
  (vendored in tests/data/asyncapi/) over a document ``hub docs`` wrote.
- :func:`pdfsig_verdicts`: poppler's ``pdfsig`` (Debian ``poppler-utils``) over a signed
  PDF, with an NSS database (``certutil``, Debian ``libnss3-tools``) that trusts the
  given roots: one verdict per signature.
- :func:`openssl_ts_verify`: ``openssl ts -verify`` of an RFC 3161 token against the
  TSA's chain.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

__all__ = ["asyncapi_problems", "openssl_ts_verify"]

DATA = Path(__file__).resolve().parents[1] / "data"
ASYNCAPI_SCHEMA = DATA / "asyncapi" / "asyncapi-3.0.0.schema.json"


@cache
def _asyncapi() -> Draft7Validator:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def asyncapi_problems(document: dict[str, Any]) -> list[str]:
    """Where ``document`` breaks the AsyncAPI 3.0.0 schema (empty: valid)."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
            for e in _asyncapi().iter_errors(document)]


def _pem_file(directory: Path, name: str, certificates: Any) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    path = directory / name
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certificates))
    return path


def openssl_ts_verify(token_der: bytes, digest: bytes, roots: Any) -> tuple[bool, str]:
    """``openssl ts -verify -token_in`` of a TimeStampToken (DER) for ``digest`` with
    ``roots`` (cryptography certificates) as the only trusted CAs: (verified, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "token.der").write_bytes(token_der)
        ca_file = _pem_file(directory, "roots.pem", roots)
        done = subprocess.run(
            ["openssl", "ts", "-verify", "-token_in", "-in", str(directory / "token.der"),
             "-digest", digest.hex(), "-CAfile", str(ca_file)],
            capture_output=True, text=True, timeout=30, check=False)
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0 and "Verification: OK" in output, output
