"""KES key versions: the secret key, its HMAC key, and their stored encoding (api.md §8.1-8.2).

Every message gets its own AEAD key, derived from the secret key and a random 16-byte IV
(HMAC-SHA-256 for AES256, HChaCha20 for ChaCha20), so the birthday bound of random 96-bit
nonces does not limit how much one secret key can encrypt. The key's own type picks the AEAD,
never a field of the ciphertext.
"""

from __future__ import annotations

import base64
import enum
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from . import ciphertext, gojson, protobuf
from .errors import DecryptionError, KeyFormatError
from .hchacha20 import hchacha20
from .timestamp import UNIX_EPOCH, ZERO_TIME, Timestamp

KEY_SIZE = 32
HASH_SHA256 = 1  # protobuf HMACKey.Hash


class Algorithm(enum.Enum):
    """A secret key type; the value is its protobuf ``SecretKey.Type`` id."""

    AES256 = 1
    CHACHA20 = 2

    @property
    def go_name(self) -> str:
        return "AES256" if self is Algorithm.AES256 else "ChaCha20"

    def __str__(self) -> str:
        return self.go_name

    @classmethod
    def parse(cls, name: str) -> Algorithm:
        """Accept the current and the v0.22 names, exactly (case-sensitive); else ValueError."""
        if name in ("AES256", "AES256-GCM_SHA256"):
            return cls.AES256
        if name in ("ChaCha20", "XCHACHA20-POLY1305"):
            return cls.CHACHA20
        raise ValueError(f"algorithm '{name}' is not supported")


def _aes256_gcm(key: bytes, iv: bytes) -> AESGCM:
    return AESGCM(hmac.digest(key, iv, "sha256"))


def _chacha20_poly1305(key: bytes, iv: bytes) -> ChaCha20Poly1305:
    # Not XChaCha20-Poly1305: the sub-key feeds IETF ChaCha20-Poly1305 with the random nonce.
    return ChaCha20Poly1305(hchacha20(key, iv))


_AEAD_FACTORIES: dict[Algorithm, Callable[[bytes, bytes], AESGCM | ChaCha20Poly1305]] = {
    Algorithm.AES256: _aes256_gcm,
    Algorithm.CHACHA20: _chacha20_poly1305,
}


class SecretKey:
    """A 32-byte master key that encrypts and decrypts; never shows its bytes."""

    __slots__ = ("_aead", "_algorithm", "_key")

    def __init__(self, key: bytes, algorithm: Algorithm) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"invalid key length '{len(key)}' for '{algorithm}'")
        if not isinstance(algorithm, Algorithm):
            raise TypeError("algorithm must be an Algorithm")
        self._key = bytes(key)
        self._algorithm = algorithm
        self._aead = _AEAD_FACTORIES[algorithm]

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Return ``sealed ‖ IV ‖ nonce`` (§8.3), ``len(plaintext) + 44`` bytes."""
        random = os.urandom(ciphertext.RANDOM_SIZE)
        iv, nonce = random[: ciphertext.IV_SIZE], random[ciphertext.IV_SIZE :]
        return self._aead(self._key, iv).encrypt(nonce, plaintext, associated_data) + random

    def decrypt(self, data: bytes, associated_data: bytes = b"") -> bytes:
        """Decrypt any ciphertext format KES ever produced (§8.5); ``DecryptionError`` if not."""
        sealed, iv, nonce = ciphertext.split(bytes(data))  # bytes(b) is b: no copy
        try:
            return self._aead(self._key, iv).decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            raise DecryptionError("ciphertext is not authentic") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return self._algorithm is other._algorithm and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash((SecretKey, self._algorithm))

    def __repr__(self) -> str:
        return f"SecretKey(algorithm={self._algorithm.go_name})"


class HMACKey:
    """A 32-byte HMAC-SHA-256 key (§8.7); never shows its bytes."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"invalid key length '{len(key)}' for 'SHA256'")
        self._key = bytes(key)

    def mac(self, message: bytes) -> bytes:
        return hmac.digest(self._key, message, "sha256")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HMACKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(HMACKey)

    def __repr__(self) -> str:
        return "HMACKey(hash=SHA256)"


_LEGACY_FIELDS = {
    "bytes": gojson.FieldKind.BYTES,
    "algorithm": gojson.FieldKind.STRING,
    "created_at": gojson.FieldKind.TIME,
    "created_by": gojson.FieldKind.STRING,
}


@dataclass(frozen=True)
class KeyVersion:
    """One KES key: what the keystore holds under a key name."""

    secret_key: SecretKey
    hmac_key: HMACKey | None  # None only for keys stored in the legacy JSON format
    created_at: Timestamp
    created_by: str

    @classmethod
    def generate(cls, created_by: str, algorithm: Algorithm = Algorithm.AES256) -> KeyVersion:
        return cls.from_import(os.urandom(KEY_SIZE), algorithm, created_by)

    @classmethod
    def from_import(cls, key: bytes, algorithm: Algorithm, created_by: str) -> KeyVersion:
        """Wrap imported key bytes; the HMAC key is random so MACs do not follow from them."""
        return cls(
            SecretKey(key, algorithm), HMACKey(os.urandom(KEY_SIZE)), Timestamp.now(), created_by
        )

    def encode(self) -> bytes:
        """The current stored format: padded base64 of the protobuf message, byte-exact with Go."""
        if self.hmac_key is None:
            raise ValueError("a key version without an HMAC key cannot be encoded")
        message = protobuf.KeyVersionMessage(
            secret_key=protobuf.KeyMessage(self.secret_key._key, self.secret_key.algorithm.value),
            hmac_key=protobuf.KeyMessage(self.hmac_key._key, HASH_SHA256),
            created_at=(self.created_at.seconds, self.created_at.nanos),
            created_by=self.created_by,
        )
        return base64.b64encode(protobuf.encode_key_version(message))

    @classmethod
    def parse(cls, value: bytes | str) -> KeyVersion:
        """Read either stored format (§8.2); ``KeyFormatError`` for anything unreadable."""
        try:
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        except UnicodeEncodeError:
            raise KeyFormatError("invalid key: not UTF-8 text") from None
        data = bytes(data)
        try:
            document = gojson.parse(data)
        except gojson.GoJSONError:
            return cls._parse_protobuf(data)
        return cls._parse_legacy_json(document)

    @classmethod
    def _parse_legacy_json(cls, document: object) -> KeyVersion:
        try:
            fields = gojson.decode_struct(document, _LEGACY_FIELDS)
        except gojson.GoJSONError as err:
            raise KeyFormatError(f"invalid legacy key: {err}") from None
        name = fields.get("algorithm", "")
        try:
            algorithm = Algorithm.parse(name) if name else Algorithm.AES256
            secret_key = SecretKey(fields.get("bytes", b""), algorithm)
        except ValueError as err:
            raise KeyFormatError(f"invalid legacy key: {err}") from None
        return cls(
            secret_key,
            None,
            fields.get("created_at", ZERO_TIME),
            fields.get("created_by", ""),
        )

    @classmethod
    def _parse_protobuf(cls, data: bytes) -> KeyVersion:
        try:
            message = protobuf.decode_key_version(gojson.base64_decode(data))
        except ValueError as err:
            raise KeyFormatError(f"invalid key: {err}") from None
        secret, hmac_key = message.secret_key, message.hmac_key
        if secret is None or hmac_key is None:
            raise KeyFormatError("invalid key: secret key or HMAC key missing")
        if len(secret.key) != KEY_SIZE or secret.kind not in (1, 2):
            raise KeyFormatError("invalid key: bad secret key length or type")
        if len(hmac_key.key) != KEY_SIZE or hmac_key.kind != HASH_SHA256:
            raise KeyFormatError("invalid key: bad HMAC key length or hash")
        if message.created_at is None:
            created_at = UNIX_EPOCH
        else:
            seconds, nanos = message.created_at
            created_at = Timestamp.from_unix_nanos(seconds * 1_000_000_000 + nanos)
        return cls(
            SecretKey(secret.key, Algorithm(secret.kind)),
            HMACKey(hmac_key.key),
            created_at,
            message.created_by,
        )
