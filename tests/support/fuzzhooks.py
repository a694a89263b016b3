"""schemathesis hooks of the fuzzing pass (``SCHEMATHESIS_HOOKS=tests.support.fuzzhooks``):
how to send the generated bodies of the routes that take a PDF."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/pdf")
def pdf(ctx: Any, value: Any) -> bytes:
    """The generated "binary" string as the raw body (the hub must refuse non-PDFs)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
