"""Personal fields encrypted at rest (ID-card numbers, bank accounts): AES-256-GCM.

The key is `FRONTLINE_FIELD_KEY` (32 random bytes, urlsafe base64; make one with
`python -c "from shared.fieldcrypt import new_key; print(new_key())"`). Every service that
holds such fields reads the same key: the registry encrypts, the incentives service keeps
the ciphertext it was sent and decrypts only while writing a bank payment file. Embedded
mode without the setting makes `var/field.key` (0600) on first start; distributed mode
refuses to start and names the setting.

A token is `v1.<kid>.<urlsafe base64 of nonce + ciphertext>`, `kid` being the first 8 hex
digits of the key's SHA-256, so a token sealed under another key is refused by name rather
than failing as garbage. The field's name is the associated data: a ciphertext moved to
another column does not decrypt.
"""

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Request

from shared.keys import KeyConfigError
from shared.secrets import load_or_create
from shared.settings import KernelSettings

KEY_FILE = "field.key"
SETTING = "FRONTLINE_FIELD_KEY"


class FieldCryptError(ValueError):
    """A token that this key cannot open (another key, edited, or not a token)."""


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError as exc:
        raise KeyConfigError(f"{SETTING} is not urlsafe base64") from exc
    if len(raw) != 32:
        raise KeyConfigError(f"{SETTING} must be 32 bytes (urlsafe base64), not {len(raw)}")
    return raw


class FieldCipher:
    def __init__(self, key: bytes):
        self._aead = AESGCM(key)
        self.kid = hashlib.sha256(key).hexdigest()[:8]

    @classmethod
    def from_settings(cls, kernel: KernelSettings) -> "FieldCipher":
        if kernel.field_key.strip():
            return cls(_decode_key(kernel.field_key))
        if kernel.mode != "embedded":
            raise KeyConfigError(
                f"{SETTING} is not set: ID-card numbers and bank accounts are encrypted with "
                "it (32 bytes, urlsafe base64; the registry and incentives need the same key)"
            )
        text = load_or_create(kernel.var_dir / KEY_FILE, lambda: new_key().encode())
        return cls(_decode_key(text.decode()))

    def encrypt(self, field: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), field.encode())
        return f"v1.{self.kid}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, field: str, token: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
        except ValueError:
            raise FieldCryptError(f"{field}: not an encrypted field") from None
        if version != "v1":
            raise FieldCryptError(f"{field}: unknown token version {version!r}")
        if kid != self.kid:
            raise FieldCryptError(f"{field}: sealed under key {kid}, this key is {self.kid}")
        try:
            raw = base64.urlsafe_b64decode(body)
            return self._aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except (ValueError, InvalidTag):
            raise FieldCryptError(f"{field}: the ciphertext does not open") from None


def mask(value: str | None) -> str | None:
    """First 4 and last 4 characters, the rest as `*` (`5223**********1234`)."""
    if value is None:
        return None
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def field_cipher(request: Request) -> FieldCipher:
    """The app's cipher (built by shared.runtime when a service declares `uses_field_key`)."""
    cipher = getattr(request.app.state, "field_cipher", None)
    if cipher is None:
        raise RuntimeError("this app holds no field key (ServiceSpec.uses_field_key)")
    return cipher
