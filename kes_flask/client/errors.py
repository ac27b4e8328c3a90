"""Errors as the Go client (kms-go) interprets them (api.md §2.2).

A server error is a status code plus the server's message. Like kms-go, two server errors are
equal iff status and message match, so ``err == ErrKeyNotFound`` keeps working; on top of that each
error the Go client matches has its own class, so ``except KeyNotFound:`` works too.
"""

from __future__ import annotations


class KesError(Exception):
    """Every error the SDK raises."""


class KesServerError(KesError):
    """The server answered with a status >= 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KesServerError) and (self.status, self.message) == (
            other.status,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.status, self.message))


class NotAllowed(KesServerError):
    """403: the identity's policy does not allow this API (or the identity is unknown)."""


class KeyNotFound(KesServerError):
    """404: no key with this name."""


class KeyExists(KesServerError):
    """400: a key with this name already exists."""


class PolicyNotFound(KesServerError):
    """404: no policy with this name."""


class IdentityNotFound(KesServerError):
    """404: the identity is neither the admin nor assigned to a policy."""


class DecryptionFailed(KesServerError):
    """400: wrong key, wrong context, or a modified ciphertext."""


class KesConnectionError(KesError):
    """No endpoint could be reached (after kms-go's retries and failover).

    The text has the Go client's shape: ``kes: connection error: GET "<url>": <cause>``.
    """


class KesTLSError(KesError):
    """The TLS handshake failed (e.g. the server certificate is not trusted): ``GET "<url>": …``."""


ErrNotAllowed = NotAllowed(403, "not authorized: insufficient permissions")
ErrKeyNotFound = KeyNotFound(404, "key does not exist")
ErrKeyExists = KeyExists(400, "key already exists")
ErrPolicyNotFound = PolicyNotFound(404, "policy does not exist")
ErrIdentityNotFound = IdentityNotFound(404, "identity does not exist")
ErrDecrypt = DecryptionFailed(400, "decryption failed: ciphertext is not authentic")

_TYPED: dict[tuple[int, str], type[KesServerError]] = {
    (e.status, e.message): type(e)
    for e in (
        ErrNotAllowed,
        ErrKeyNotFound,
        ErrKeyExists,
        ErrPolicyNotFound,
        ErrIdentityNotFound,
        ErrDecrypt,
    )
}
# Texts of older servers that kms-go still maps onto the current errors.
_LEGACY = {
    (400, "key does already exist"): ErrKeyExists,
    (403, "prohibited by policy"): ErrNotAllowed,
}


def server_error(status: int, message: str) -> KesServerError:
    """The typed error for a status and message, or a plain ``KesServerError``."""
    legacy = _LEGACY.get((status, message))
    if legacy is not None:
        return type(legacy)(legacy.status, legacy.message)
    return _TYPED.get((status, message), KesServerError)(status, message)
