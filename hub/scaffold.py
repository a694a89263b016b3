"""``hub connector new NAME``: a connector package that passes its own tests at once.

The package has the standard modules (docs/connectors.md): settings, messages (its own
payloads and topics), mapping, adapter, connector, effects, peer (a real HTTP server on
loopback with fault knobs), plugin (the entry point declaration) and tests (the mapping,
and the shared connector contract, connectors/_shared/testkit.py), with a pyproject.toml
declaring the entry point ``procurement_hub.connectors``. It stores "records" at a
reference peer; the integrator replaces that with the real system's operations.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["ScaffoldError", "write_connector"]

TEMPLATES = Path(__file__).with_name("scaffold_template")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class ScaffoldError(ValueError):
    """The name or the target directory cannot be used (the message says why)."""


def _values(name: str) -> dict[str, str]:
    words = [w for w in name.split("-") if w]
    return {
        "name": name,
        "dist": f"hub-connector-{name}",
        "pkg": "hub_connector_" + name.replace("-", "_"),
        "cls": "".join(w.capitalize() for w in words),
        "env": "HUB_" + name.upper().replace("-", "_") + "_",
        "rule": "X-" + name.upper().replace("-", "")[:20],
        "title": " ".join(words).title() + " connector",
    }


def write_connector(name: str, directory: Path) -> Path:
    """Write the package for connector ``name`` into ``directory/name``; returns its path."""
    if not _NAME.match(name) or name.endswith("-") or "--" in name:
        raise ScaffoldError(f"connector name {name!r}: use lower-case letters, digits and single "
                            "'-', starting with a letter (e.g. docmgmt-webdav)")
    values = _values(name)
    target = directory / name
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty; choose another --dir")
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        parts = [values["pkg"] if part == "pkg" else part for part in relative.parts]
        out = target.joinpath(*parts)
        text = template.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return target
