"""KES errors (api.md §2); their JSON answers are built in ``responses.py``."""

from __future__ import annotations

# The (status, message) pairs clients match on (api.md §2.2) — never reword these.
NOT_ALLOWED = (403, "not authorized: insufficient permissions")
KEY_NOT_FOUND = (404, "key does not exist")
KEY_EXISTS = (400, "key already exists")
POLICY_NOT_FOUND = (404, "policy does not exist")
IDENTITY_NOT_FOUND = (404, "identity does not exist")
NOT_AUTHENTIC = (400, "decryption failed: ciphertext is not authentic")
INVALID_BODY = (400, "invalid request body")
NOT_FOUND = (404, "404 page not found")


class KesError(Exception):
    """An error answered as ``{"message": ...}`` with its status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: dict[str, str] | None = None

    def with_headers(self, headers: dict[str, str]) -> KesError:
        self.headers = headers
        return self

    @classmethod
    def of(cls, pair: tuple[int, str]) -> KesError:
        return cls(*pair)


def invalid_name(kind: str, name: str) -> KesError:
    return KesError(400, f"{kind} '{name}' is empty, too long or contains invalid characters")


def invalid_pattern(pattern: str) -> KesError:
    return KesError(400, f"listing pattern '{pattern}' is empty, too long or is invalid")
