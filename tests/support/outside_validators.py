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
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

__all__ = ["PdfsigVerdict", "asyncapi_problems", "openssl_ts_verify", "pdfsig_verdicts"]

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
