"""Server errors as the Go client (kms-go) interprets them: equal iff status and message match."""

from __future__ import annotations


class KesServerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KesServerError) and (self.status, self.message) == (
            other.status,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.status, self.message))


ErrNotAllowed = KesServerError(403, "not authorized: insufficient permissions")
ErrKeyNotFound = KesServerError(404, "key does not exist")
ErrKeyExists = KesServerError(400, "key already exists")
ErrPolicyNotFound = KesServerError(404, "policy does not exist")
ErrIdentityNotFound = KesServerError(404, "identity does not exist")
ErrDecrypt = KesServerError(400, "decryption failed: ciphertext is not authentic")
