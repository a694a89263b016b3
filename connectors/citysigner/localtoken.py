"""A local SoftHSM2 token holding the city's signing key: the embedded default's HSM.

In production the city's key lives in its HSM or signing card behind a PKCS#11 module
(``HUB_CITYSIGNER_*``). On a developer's machine, and in the tests, SoftHSM2 plays that
part: :func:`ensure_city_token` keeps a token under ``<run dir>/softhsm`` with its own
``softhsm2.conf``, the city's key and certificate (issued by devkit/pki.py's test
CA) imported as non-extractable PKCS#11 objects, and a generated SO PIN and user PIN in
a 0600 file beside it. It is idempotent: a second run finds the token and reuses it.
:func:`create_token` is the reusable step (the card tests' tokens use it too).

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, so it is one token
directory per process: :func:`use_token_directory` points the process at it and
re-initialises the module. The PINs reach ``softhsm2-util`` as arguments of a short-lived
local child process; they never go to a log, an exception or a repr.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, CertificateType, ObjectClass
from pkcs11.util.rsa import decode_rsa_private_key
from pydantic import SecretStr

from connectors.citysigner.settings import CitySignerSettings
from devkit.pki import DevPki, Identity

__all__ = [
    "MODULE_CANDIDATES",
    "LocalCityToken",
    "SoftHsmMissingError",
    "create_token",
    "ensure_city_token",
    "softhsm_module",
    "use_token_directory",
]

log = logging.getLogger(__name__)

MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/softhsm/libsofthsm2.so",
)
CITY_TOKEN_LABEL = "city"  # noqa: S105 -- a token label, not a password
CITY_KEY_LABEL = "city"
INSTALL_HINT = "install it with `bash deploy/setup.d/20-card.sh` (apt-get install softhsm2)"


class SoftHsmMissingError(RuntimeError):
    """SoftHSM2's module or ``softhsm2-util`` is not installed."""


@dataclass(frozen=True)
class LocalCityToken:
    """The embedded default's city token: its signer settings and the roots to trust."""

    settings: CitySignerSettings = field(repr=False)
    directory: Path
    pki: DevPki = field(repr=False)


def softhsm_module() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, if installed."""
    return next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)


def _tools() -> tuple[str, str]:
    module, util = softhsm_module(), shutil.which("softhsm2-util")
    if module is None or util is None:
        raise SoftHsmMissingError(f"SoftHSM2 is missing: {INSTALL_HINT}")
    return module, util


def use_token_directory(directory: Path) -> str:
    """Point this process's SoftHSM2 at ``directory`` (own conf); return the module path."""
    module, _ = _tools()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\n", encoding="utf-8")
    if os.environ.get("SOFTHSM2_CONF") != str(conf):
        os.environ["SOFTHSM2_CONF"] = str(conf)
        pkcs11.lib(module).reinitialize()  # SoftHSM reads the conf at C_Initialize
    return module


def _token_state(module: str, label: str, key_label: str) -> str:
    """``missing``, ``complete`` (the certificate, imported last, is there) or ``partial``."""
    try:
        token = pkcs11.lib(module).get_token(token_label=label)
    except pkcs11.exceptions.NoSuchToken:
        return "missing"
    with token.open() as session:  # public objects only: no PIN needed
        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                          Attribute.LABEL: key_label}))
    return "complete" if certs else "partial"


def _delete_token(module: str, label: str) -> None:
    _, util = _tools()
    subprocess.run([util, "--delete-token", "--token", label], check=True,  # noqa: S603
                   capture_output=True)
    pkcs11.lib(module).reinitialize()


def create_token(directory: Path, identity: Identity, *, token_label: str, key_label: str,
                 pin: str, so_pin: str) -> str:
    """Create token ``token_label`` in ``directory`` holding ``identity``'s key (private,
    sensitive: it never leaves the token) and certificate, both labelled ``key_label``.
    Returns the module path."""
    module = use_token_directory(directory)
    _, util = _tools()
    # the tool found on PATH, fixed arguments (no shell)
    done = subprocess.run([util, "--init-token", "--free", "--label", token_label,  # noqa: S603
                           "--so-pin", so_pin, "--pin", pin],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:  # its output names no PIN; the arguments are not shown
        raise RuntimeError(f"softhsm2-util --init-token {token_label!r} failed: "
                           f"{done.stderr.strip()[:300]}")
    lib = pkcs11.lib(module)
    lib.reinitialize()  # the new token is seen after re-initialisation
    key_der = identity.private_key().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    with lib.get_token(token_label=token_label).open(rw=True, user_pin=pin) as session:
        attrs = decode_rsa_private_key(key_der)
        attrs.update({Attribute.TOKEN: True, Attribute.PRIVATE: True,
                      Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                      Attribute.ID: b"\x01", Attribute.LABEL: key_label})
        session.create_object(attrs)
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.PRIVATE: False,
            Attribute.ID: b"\x01", Attribute.LABEL: key_label,
            Attribute.VALUE: identity.cert_der,
            Attribute.SUBJECT: identity.certificate.subject.public_bytes(),
            Attribute.ISSUER: identity.certificate.issuer.public_bytes(),
        })
    return module


def _pins(path: Path) -> tuple[dict[str, str], bool]:
    """The token's PINs, generated once into a 0600 file (and whether just now)."""
    created = False
    if not path.exists():
        fresh = {"so_pin": secrets.token_hex(8), "user_pin": secrets.token_hex(8)}
        try:  # O_EXCL: two processes starting together keep one pair
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(fresh, out)
            created = True
    pins: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return pins, created


def ensure_city_token(run_dir: Path, pki: DevPki) -> LocalCityToken:
    """The city's SoftHSM2 token under ``run_dir/softhsm``, created on first use.

    Raises :class:`SoftHsmMissingError` when SoftHSM2 is not installed.
    """
    directory = run_dir / "softhsm"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    module = use_token_directory(directory)
    pins, new_pins = _pins(directory / "pins.json")
    state = _token_state(module, CITY_TOKEN_LABEL, CITY_KEY_LABEL)
    if state == "partial" or (state == "complete" and new_pins):
        # half made by a crashed run, or its PINs lost: nobody can use it, so start over
        log.warning("city signer: recreating the unusable SoftHSM2 token %r in %s",
                    CITY_TOKEN_LABEL, directory)
        _delete_token(module, CITY_TOKEN_LABEL)
        state = "missing"
    if state == "missing":
        create_token(directory, pki.city_signer, token_label=CITY_TOKEN_LABEL,
                     key_label=CITY_KEY_LABEL, pin=pins["user_pin"], so_pin=pins["so_pin"])
        log.info("city signer: created SoftHSM2 token %r in %s", CITY_TOKEN_LABEL, directory)
    settings = CitySignerSettings(module=module, token_label=CITY_TOKEN_LABEL,
                                  key_label=CITY_KEY_LABEL, pin=SecretStr(pins["user_pin"]),
                                  trust_roots=(pki.root.cert_path,))
    return LocalCityToken(settings=settings, directory=directory, pki=pki)
