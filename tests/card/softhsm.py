"""A SoftHSM2 token holding a test card's key and certificate (the PKCS#11 backend's peer)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pkcs11
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, CertificateType, ObjectClass
from pkcs11.util.rsa import decode_rsa_private_key

from connectors.devpki import CardCredentials

MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "56785678"


def softhsm_module() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, if installed."""
    return next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)


def make_token(directory: Path, creds: CardCredentials, label: str, pin: str) -> str:
    """Create a token ``label`` in ``directory`` holding ``creds``; return the module path.

    SOFTHSM2_CONF is pointed at ``directory`` for this process: SoftHSM reads it when the
    module is first loaded, so every token of a test session shares one directory.
    """
    module = softhsm_module()
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        raise RuntimeError("SoftHSM2 missing: run `bash deploy/setup.d/20-card.sh`")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                    "--pin", pin], check=True, capture_output=True)
    lib = pkcs11.lib(module)
    lib.reinitialize()
    token = lib.get_token(token_label=label)
    key_der = creds.private_key().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with token.open(rw=True, user_pin=pin) as session:
        attrs = decode_rsa_private_key(key_der)
        attrs.update({Attribute.TOKEN: True, Attribute.PRIVATE: True,
                      Attribute.SENSITIVE: True, Attribute.ID: b"\x01",
                      Attribute.LABEL: "card"})
        session.create_object(attrs)
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.PRIVATE: False,
            Attribute.ID: b"\x01", Attribute.LABEL: "card",
            Attribute.VALUE: creds.cert_der,
            Attribute.SUBJECT: creds.certificate.subject.public_bytes(),
            Attribute.ISSUER: creds.certificate.issuer.public_bytes(),
        })
    return module
