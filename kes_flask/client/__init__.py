"""The kes-flask client SDK: ``Client`` (typed) and ``KesClient`` (wire-level JSON).

See docs/sdk.md.
"""

from kes_flask.client.client import KesClient
from kes_flask.client.errors import (
    DecryptionFailed,
    ErrDecrypt,
    ErrIdentityNotFound,
    ErrKeyExists,
    ErrKeyNotFound,
    ErrNotAllowed,
    ErrPolicyNotFound,
    IdentityNotFound,
    KesConnectionError,
    KesError,
    KesServerError,
    KesTLSError,
    KeyExists,
    KeyNotFound,
    NotAllowed,
    PolicyNotFound,
)
from kes_flask.client.sdk import Client, LogStream
from kes_flask.client.types import (
    API,
    DEK,
    AuditEvent,
    ErrorEvent,
    IdentityInfo,
    KeyInfo,
    Metrics,
    Policy,
    PolicyInfo,
    SelfInfo,
    Status,
)

__all__ = [
    "API",
    "DEK",
    "AuditEvent",
    "Client",
    "DecryptionFailed",
    "ErrDecrypt",
    "ErrIdentityNotFound",
    "ErrKeyExists",
    "ErrKeyNotFound",
    "ErrNotAllowed",
    "ErrPolicyNotFound",
    "ErrorEvent",
    "IdentityInfo",
    "IdentityNotFound",
    "KesClient",
    "KesConnectionError",
    "KesError",
    "KesServerError",
    "KesTLSError",
    "KeyExists",
    "KeyInfo",
    "KeyNotFound",
    "LogStream",
    "Metrics",
    "NotAllowed",
    "Policy",
    "PolicyInfo",
    "PolicyNotFound",
    "SelfInfo",
    "Status",
]
