#!/usr/bin/env python3
"""Vendor a JP PINT resource package (OpenPeppol) into the repository: one step.

    python3 deploy/update_jp_pint.py pint-jp-resources-dev-1.1.3.zip \
        [--self-billing pint-jp-sb-resources-dev-1.1.3.zip]

Writes the two compiled Schematron stylesheets to ``pipelines/invoices/jp_pint/``, the
package's example invoices to ``tests/data/jp_pint/`` (the self-billing package's example
too, when given), and ``MANIFEST.json`` with the version (from the file name) and the
SHA-256 of every vendored file. The hub compiles what ``MANIFEST.json`` names; then run
``tests/unit/test_invoice_gate.py``, whose expected outcome per example says what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STYLESHEETS = ("PINT-UBL-validation-preprocessed.xslt", "PINT-jurisdiction-aligned-rules.xslt")


def _version(name: str) -> str:
    match = re.search(r"resources-dev-(\d+\.\d+\.\d+)\.zip$", name)
    if match is None:
        sys.exit(f"{name}: expected a name like pint-jp-resources-dev-1.1.3.zip")
    return match.group(1)


def _examples(package: zipfile.ZipFile, examples: Path, out: dict[str, str]) -> None:
    for member in package.namelist():
        if member.startswith("trn-invoice/example/") and member.endswith(".xml"):
            name = Path(member).name
            (examples / name).write_bytes(package.read(member))
            out[name] = hashlib.sha256(package.read(member)).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--self-billing", type=Path)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args()
    version = _version(args.package.name)
    rules = args.root / "pipelines" / "invoices" / "jp_pint"
    examples_dir = args.root / "tests" / "data" / "jp_pint"
    rules.mkdir(parents=True, exist_ok=True)
    examples_dir.mkdir(parents=True, exist_ok=True)
    for old in examples_dir.glob("*.xml"):
        old.unlink()
    manifest: dict[str, object] = {"package": args.package.name, "version": version}
    with zipfile.ZipFile(args.package) as package:
        sheets = {}
        for name in STYLESHEETS:
            data = package.read(f"trn-invoice/schematron/{name}")
            (rules / name).write_bytes(data)
            sheets[name] = hashlib.sha256(data).hexdigest()
        manifest["stylesheets"] = sheets
        examples: dict[str, str] = {}
        _examples(package, examples_dir, examples)
    if args.self_billing is not None:
        with zipfile.ZipFile(args.self_billing) as package:
            _examples(package, examples_dir, examples)
        manifest["self_billing_package"] = args.self_billing.name
    manifest["examples"] = dict(sorted(examples.items()))
    (rules / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False)
                                         + "\n", "utf-8")
    print(f"JP PINT {version}: {len(sheets)} stylesheets, {len(examples)} examples vendored")


if __name__ == "__main__":
    main()
