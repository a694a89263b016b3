"""PKCS#11 card backend through python-pkcs11, for vendor middleware (PKCS#11 v2.40).

The vendor's module (``.so``) exposes the card as a token: the certificate is a public
object, VERIFY is ``C_Login`` with the user PIN, the signature is ``CKM_RSA_PKCS`` over a
DigestInfo (the card hashes nothing, like a PC/SC PSO). PKCS#11 does not report an exact
retry count: only the token flags ``CKF_USER_PIN_FINAL_TRY`` (1 left) and
``CKF_USER_PIN_LOCKED``; otherwise the retries are unknown. Tested with SoftHSM2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import pkcs11
import pkcs11.exceptions as p11e
from cryptography import x509
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag

from card_agent.card import PinStatus, digest_info
from card_agent.errors import (
    CardLockedError,
    CardProtocolError,
    CardRemovedError,
    NoCardError,
    WrongPinError,
)

__all__ = ["Pkcs11Backend", "Pkcs11Session"]

_GONE = (p11e.DeviceRemoved, p11e.TokenNotPresent, p11e.SessionClosed,
         p11e.SessionHandleInvalid)


class Pkcs11Session:
    """An open token; the logged-in session exists only between verify_pin and close."""

    def __init__(self, token: Any) -> None:
        self._token = token
        self.reader = str(token.label)
        self._public = token.open()
        self._user: Any = None
        self._cert: x509.Certificate | None = None

    def certificate(self) -> x509.Certificate:
        if self._cert is None:
            try:
                objects = list(self._public.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
            except _GONE as exc:
                raise CardRemovedError() from exc
            if not objects:
                raise CardProtocolError("certificate lookup", 0x6A82)
            self._cert = x509.load_der_x509_certificate(bytes(objects[0][Attribute.VALUE]))
        return self._cert

    def pin_status(self) -> PinStatus:
        # Token objects cache their flags: ask the slot for the current ones.
        flags = self._token.slot.get_token().flags
        if flags & TokenFlag.USER_PIN_LOCKED:
            return PinStatus(verified=self._user is not None, retries_left=0, locked=True)
        retries = 1 if flags & TokenFlag.USER_PIN_FINAL_TRY else None
        return PinStatus(verified=self._user is not None, retries_left=retries, locked=False)

    def verify_pin(self, pin: str) -> None:
        if self._user is not None:
            return
        try:
            self._user = self._token.open(user_pin=pin)
        except p11e.PinLocked as exc:
            raise CardLockedError() from exc
        except (p11e.PinIncorrect, p11e.PinLenRange, p11e.PinInvalid) as exc:
            status = self.pin_status()
            if status.locked:
                raise CardLockedError() from exc
            raise WrongPinError(status.retries_left) from exc
        except _GONE as exc:
            raise CardRemovedError() from exc

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        if self._user is None:
            raise CardProtocolError("signature without PIN", 0x6982)
        try:
            key = self._user.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA)
            return bytes(key.sign(digest_info(digest, algorithm), mechanism=Mechanism.RSA_PKCS))
        except _GONE as exc:
            raise CardRemovedError() from exc

    def close(self) -> None:
        for session in (self._user, self._public):
            if session is not None:
                # A token already gone has nothing left to close.
                with contextlib.suppress(*_GONE):
                    session.close()
        self._user = None

    def __enter__(self) -> Pkcs11Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Pkcs11Backend:
    """Tokens of one PKCS#11 module (the vendor's middleware, or SoftHSM2)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._lib = pkcs11.lib(module)

    def _tokens(self) -> list[Any]:
        return [slot.get_token() for slot in self._lib.get_slots(token_present=True)]

    def readers(self) -> Sequence[str]:
        return [str(t.label) for t in self._tokens()]

    def open(self, reader: str | None = None) -> Pkcs11Session:
        for token in self._tokens():
            if reader is None or token.label == reader:
                return Pkcs11Session(token)
        raise NoCardError(f"token {reader!r} not found" if reader else "no token present")
