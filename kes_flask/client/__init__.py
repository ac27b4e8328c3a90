"""The kes-flask client SDK."""

from kes_flask.client.client import DEK, KesClient
from kes_flask.client.errors import (
    ErrDecrypt,
    ErrIdentityNotFound,
    ErrKeyExists,
    ErrKeyNotFound,
    ErrNotAllowed,
    ErrPolicyNotFound,
    KesServerError,
)

__all__ = [
    "DEK",
    "ErrDecrypt",
    "ErrIdentityNotFound",
    "ErrKeyExists",
    "ErrKeyNotFound",
    "ErrNotAllowed",
    "ErrPolicyNotFound",
    "KesClient",
    "KesServerError",
]
