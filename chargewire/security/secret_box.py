"""Encryption at rest for secrets the service must use again: API tokens, signing secrets, SASL passwords."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chargewire.errors import SecretUndecryptable

_KEY_CONTEXT = b"chargewire secret box v1"


class SecretBox:
    """Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from `CHARGEWIRE_SECRET_KEY` with HKDF."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> bytes:
        """The ciphertext of `plaintext`."""
        return self._fernet.encrypt(plaintext.encode())

    def can_decrypt(self, ciphertext: bytes) -> bool:
        """True when this box's key is the one that encrypted `ciphertext`."""
        try:
            self._fernet.decrypt(ciphertext)
        except InvalidToken:
            return False
        return True

    def decrypt(self, ciphertext: bytes) -> str:
        """The plaintext, or SecretUndecryptable when the key does not match the one that encrypted it."""
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise SecretUndecryptable() from exc
