"""JSON Schema of every registered message (``hub docs``): the contracts for integrators."""

from __future__ import annotations

import json
from pathlib import Path

import schemas.mail  # noqa: F401 - registers its payloads
from schemas.envelope import envelope_class
from schemas.registry import REGISTRY

__all__ = ["export_json_schemas"]


def export_json_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (message_type, version), payload in REGISTRY:
        schema = envelope_class(payload).model_json_schema(mode="serialization")
        schema["title"] = f"{message_type} v{version}"
        path = out / f"{message_type}.v{version}.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
        written.append(path)
    return written
