"""Key versions and ciphertexts, byte-compatible with Go KES (api.md §8)."""

from .errors import DecryptionError, KeyFormatError
from .keys import Algorithm, HMACKey, KeyVersion, SecretKey
from .timestamp import ZERO_TIME, Timestamp

__all__ = [
    "ZERO_TIME",
    "Algorithm",
    "DecryptionError",
    "HMACKey",
    "KeyFormatError",
    "KeyVersion",
    "SecretKey",
    "Timestamp",
]
