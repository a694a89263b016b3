"""How the reference CloudSign seals a concluded document: a real PDF signature.

CloudSign signs the agreed PDF with its own key on the parties' instruction
(電子署名法 2条1項 Q&A, seed 002) and adds a timestamp. The reference server does
the first part for real, with pyHanko and a self-made certificate, so that what
the hub stores is a signed PDF whose signature breaks when it is edited (CON-5).
It does not timestamp (the TSA connector covers RFC 3161). Reference only.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache

from asn1crypto import keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

__all__ = ["seal_pdf"]


@cache
def _signer() -> signers.SimpleSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Reference CloudSign seal"),
                       cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "procurement-hub")])
    now = datetime.now(UTC)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(cx509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    asn_cert = x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return signers.SimpleSigner(signing_cert=asn_cert,
                                signing_key=keys.PrivateKeyInfo.load(der_key),
                                cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                                    [asn_cert]))


def seal_pdf(pdf: bytes, *, reason: str = "合意締結") -> bytes:
    """``pdf`` with one more signature, as an incremental update.

    pyHanko's synchronous API runs its own event loop, so it runs in a thread of
    its own: callers may be inside one (a test, the reference server).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_seal, pdf, reason).result()


def _seal(pdf: bytes, reason: str) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(field_name="CloudSignSeal", reason=reason)
    out = signers.sign_pdf(writer, meta, signer=_signer())
    return bytes(out.getvalue())
