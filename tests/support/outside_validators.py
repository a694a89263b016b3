"""Validators written by others, so that the hub's own checks do not judge themselves.

- :func:`asyncapi_problems`: the AsyncAPI 3.0.0 JSON Schema of the AsyncAPI Initiative
  (vendored in tests/data/asyncapi/) over a document ``hub docs`` wrote.
- :func:`pdfsig_verdicts`: poppler's ``pdfsig`` (Debian ``poppler-utils``) over a signed
  PDF, with an NSS database (``certutil``, Debian ``libnss3-tools``) that trusts the
  given roots: one verdict per signature.
- :func:`openssl_ts_verify`: ``openssl ts -verify`` of an RFC 3161 token against the
  TSA's chain.
- :func:`verapdf_verdicts`: veraPDF (the PDF Association's PDF/A validator, from Maven
  Central by ``deploy/verapdf.sh``) over PDFs, as PDF/A-2b: the rules each one fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

__all__ = ["PdfsigVerdict", "assert_outside_agrees", "asyncapi_problems", "openssl_ts_verify",
           "outside_verdict", "pdfsig_verdicts", "signature_timestamps", "verapdf_verdicts"]

DATA = Path(__file__).resolve().parents[1] / "data"
VERAPDF = Path(__file__).resolve().parents[2] / "deploy" / "verapdf.sh"
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


@dataclass(frozen=True)
class PdfsigVerdict:
    """What ``pdfsig`` said of one signature."""

    field: str
    signature: str
    """e.g. ``Signature is Valid.``, ``Digest Mismatch.``"""
    certificate: str
    """e.g. ``Certificate is Trusted.``, ``Certificate issuer isn't Trusted.``"""

    @property
    def valid(self) -> bool:
        return self.signature == "Signature is Valid."

    @property
    def trusted(self) -> bool:
        return self.certificate == "Certificate is Trusted."


def _nss_database(directory: Path, roots: Any) -> str:
    """A fresh NSS database trusting exactly ``roots`` (as CAs), made with ``certutil``."""
    database = f"sql:{directory}"
    subprocess.run(["certutil", "-N", "-d", database, "--empty-password"], check=True,
                   capture_output=True, timeout=30)
    for i, root in enumerate(roots):
        pem = _pem_file(directory, f"root{i}.pem", [root])
        subprocess.run(["certutil", "-A", "-d", database, "-n", f"test-root-{i}",
                        "-t", "CT,C,C", "-i", str(pem)], check=True, capture_output=True,
                       timeout=30)
    return database


_SIGNATURE = re.compile(r"^Signature #\d+:\s*$")
_FIELD = re.compile(r"^\s*- Signature Field Name: (.*)$")
_SIG_VALIDATION = re.compile(r"^\s*- Signature Validation: (.*)$")
_CERT_VALIDATION = re.compile(r"^\s*- Certificate Validation: (.*)$")


def pdfsig_verdicts(pdf: bytes, roots: Any) -> list[PdfsigVerdict]:
    """Poppler's ``pdfsig`` over ``pdf``, trusting only ``roots`` (cryptography
    certificates) through an NSS database; one verdict per signature, in file order.
    Revocation is not asked for (``-no-ocsp``): the test PKI publishes none."""
    if shutil.which("pdfsig") is None or shutil.which("certutil") is None:
        raise RuntimeError("pdfsig or certutil missing: apt-get install poppler-utils "
                           "libnss3-tools (deploy/setup.d/10-system.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        database = _nss_database(directory, roots)
        (directory / "signed.pdf").write_bytes(pdf)
        done = subprocess.run(["pdfsig", "-nssdir", database, str(directory / "signed.pdf")],
                              capture_output=True, text=True, timeout=60, check=False)
    if done.returncode not in (0, 2):  # 2: no signature found
        raise RuntimeError(f"pdfsig failed ({done.returncode}): {done.stderr[-500:]}")
    found: list[dict[str, str]] = []
    for line in done.stdout.splitlines():
        if _SIGNATURE.match(line):
            found.append({"field": "", "signature": "", "certificate": ""})
        elif found and (m := _FIELD.match(line)):
            found[-1]["field"] = m.group(1).strip()
        elif found and (m := _SIG_VALIDATION.match(line)):
            found[-1]["signature"] = m.group(1).strip()
        elif found and (m := _CERT_VALIDATION.match(line)):
            found[-1]["certificate"] = m.group(1).strip()
    return [PdfsigVerdict(**f) for f in found]


def signature_timestamps(pdf: bytes) -> list[tuple[str, bytes, bytes]]:
    """Each signature's RFC 3161 signature timestamp (PAdES B-T): (field, token DER, the
    digest it must cover: the signature value hashed with the token's algorithm)."""
    import hashlib
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    found = []
    for signature in PdfFileReader(io.BytesIO(pdf)).embedded_signatures:
        info = signature.signer_info
        for attribute in info["unsigned_attrs"] or ():
            if attribute["type"].native != "signature_time_stamp_token":
                continue
            token = attribute["values"][0]
            tst = token["content"]["encap_content_info"]["content"].parsed
            algorithm = tst["message_imprint"]["hash_algorithm"]["algorithm"].native
            digest = hashlib.new(algorithm, info["signature"].native).digest()
            found.append((signature.field_name, token.dump(), digest))
    return found


def outside_verdict(pdf: bytes, roots: Any) -> tuple[bool, str]:
    """Whether pdfsig finds every signature valid and trusted and openssl every signature
    timestamp verified, with ``roots`` the only trust anchors: (all good, the details)."""
    verdicts = pdfsig_verdicts(pdf, roots)
    details = [f"pdfsig {v.field}: {v.signature} / {v.certificate}" for v in verdicts]
    good = bool(verdicts) and all(v.valid and v.trusted for v in verdicts)
    for field_name, token, digest in signature_timestamps(pdf):
        ok, output = openssl_ts_verify(token, digest, roots)
        said = [line for line in output.splitlines() if "Verification" in line or "error" in line]
        details.append(f"openssl ts {field_name}: {' / '.join(said) or output[-200:]}")
        good = good and ok
    return good, "\n".join(details)


def assert_outside_agrees(pdf: bytes, roots: Any, *, hub_accepts: bool,
                          signatures: int | None = None) -> None:
    """The outside validators agree with the hub's own verdict on ``pdf``: a PDF the hub
    accepts and they refuse (or the reverse) fails the test."""
    good, details = outside_verdict(pdf, roots)
    assert good == hub_accepts, (f"hub {'accepts' if hub_accepts else 'refuses'}, "
                                 f"outside validators {'accept' if good else 'refuse'}:\n"
                                 f"{details}")
    if signatures is not None:
        assert len(pdfsig_verdicts(pdf, roots)) == signatures, details


_VERA_FILE = re.compile(r"^(PASS|FAIL) (.+) 2b$")
_VERA_RULE = re.compile(r"^\s+FAIL (\S+)")


def verapdf_verdicts(pdfs: dict[str, bytes]) -> dict[str, list[str]]:
    """veraPDF over each of ``pdfs`` (name → bytes) as PDF/A-2b, in one run: the name →
    the clauses of ISO 19005-2 it fails (empty: conforms). Raises when veraPDF cannot
    run (``bash deploy/verapdf.sh fetch`` installs it; Maven and Java are needed)."""
    if not VERAPDF.exists() or shutil.which("java") is None:
        raise RuntimeError("veraPDF cannot run: java missing or deploy/verapdf.sh absent")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, pdf in pdfs.items():
            path = Path(tmp) / f"{name}.pdf"
            path.write_bytes(pdf)
            paths[str(path)] = name
        done = subprocess.run(["bash", str(VERAPDF), "validate", "--verbose", *paths],
                              capture_output=True, text=True, timeout=300, check=False)
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in done.stdout.splitlines():
        if m := _VERA_FILE.match(line):
            current = paths.get(m.group(2))
            if current is not None:
                found[current] = [] if m.group(1) == "PASS" else ["(failed)"]
        elif current is not None and (m := _VERA_RULE.match(line)):
            found[current] = [r for r in found[current] if r != "(failed)"] + [m.group(1)]
    if set(found) != set(pdfs):
        raise RuntimeError(f"veraPDF gave no verdict for every file ({done.returncode}): "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    return found
