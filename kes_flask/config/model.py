"""Typed, validated server configuration.

The loader (``kes_flask.config.loader``) turns a YAML file into these objects; the rest of the
server only ever sees them. Durations are integer nanoseconds, like Go's ``time.Duration``, so
error messages can print them the way Go KES does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECOND = 1_000_000_000
DEFAULT_ADDRESS = "0.0.0.0:7373"

# Log levels follow Go's log/slog numbering (config.md §4.5).
LEVEL_DEBUG = -4
LEVEL_INFO = 0
LEVEL_WARN = 4
LEVEL_ERROR = 8
LEVEL_OFF = LEVEL_ERROR + 1
AUDIT_ALL = "all"  # ``log.audit: all`` (kes-flask extension; Go KES rejects the value)


@dataclass(frozen=True)
class TLSConfig:
    key: str
    cert: str
    password: str = field(default="", repr=False)
    auth: str = "off"  # "off" (require any certificate, no chain check) or "on" (verify)
    ca: str = ""
    proxy_identities: tuple[str, ...] = ()
    proxy_cert_header: str = ""


@dataclass(frozen=True)
class CacheConfig:
    """Key cache expiry as configured; 0 means "not set" (defaults apply, keystores.md §1.6)."""

    expiry_any: int = 0
    expiry_unused: int = 0
    expiry_offline: int = 0

    @property
    def any(self) -> int:
        return self.expiry_any or 5 * 60 * SECOND

    @property
    def unused(self) -> int:
        return self.expiry_unused or 30 * SECOND

    @property
    def offline(self) -> int:
        return self.expiry_offline


@dataclass(frozen=True)
class LogConfig:
    error: int = LEVEL_INFO
    audit: int = LEVEL_INFO
    audit_all: bool = False  # ``log.audit: all``: also every key use and every denied request


@dataclass(frozen=True)
class APIOverride:
    """``api.<path>``: ``timeout`` 0 keeps the route default."""

    skip_auth: bool = False
    timeout: int = 0


@dataclass(frozen=True)
class PolicyConfig:
    name: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()


# --- keystores (config.md §4.9) -------------------------------------------------------------
# Secret values are excluded from repr() so that logging a config object cannot leak them.


@dataclass(frozen=True)
class FSKeystoreConfig:
    path: str
    kind: str = field(default="fs", init=False)


@dataclass(frozen=True)
class MemoryKeystoreConfig:
    """Volatile store; only reachable through ``--dev`` style setups and tests."""

    kind: str = field(default="memory", init=False)


@dataclass(frozen=True)
class VaultAppRole:
    engine: str = "approle"
    namespace: str = ""
    id: str = ""
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class VaultKubernetes:
    engine: str = "kubernetes"
    namespace: str = ""
    role: str = ""
    jwt: str = field(default="", repr=False)  # literal token, or a file path when it contains "/"


@dataclass(frozen=True)
class VaultTransit:
    engine: str = "transit"
    key: str = ""


@dataclass(frozen=True)
class VaultTLS:
    key: str = ""
    cert: str = ""
    ca: str = ""


@dataclass(frozen=True)
class VaultKeystoreConfig:
    endpoint: str
    engine: str = "kv"
    version: str = "v1"
    namespace: str = ""
    prefix: str = ""
    approle: VaultAppRole | None = None
    kubernetes: VaultKubernetes | None = None
    transit: VaultTransit | None = None
    tls: VaultTLS = VaultTLS()
    status_ping: int = 15 * SECOND
    kind: str = field(default="vault", init=False)


@dataclass(frozen=True)
class FortanixKeystoreConfig:
    endpoint: str
    group_id: str = ""
    api_key: str = field(default="", repr=False)
    ca: str = ""
    kind: str = field(default="fortanix", init=False)


@dataclass(frozen=True)
class GemaltoKeystoreConfig:
    endpoint: str
    token: str = field(default="", repr=False)
    domain: str = ""
    ca: str = ""
    kind: str = field(default="gemalto", init=False)


@dataclass(frozen=True)
class GCPKeystoreConfig:
    project_id: str
    endpoint: str = ""
    scopes: tuple[str, ...] = ()
    client_email: str = ""
    client_id: str = ""
    private_key_id: str = ""
    private_key: str = field(default="", repr=False)
    kind: str = field(default="gcp", init=False)


@dataclass(frozen=True)
class AWSKeystoreConfig:
    endpoint: str
    region: str
    kms_key: str = ""
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    kind: str = field(default="aws", init=False)


@dataclass(frozen=True)
class AzureKeystoreConfig:
    endpoint: str
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    managed_identity_client_id: str = ""
    auth: str = "default"  # "credentials", "managed_identity" or "default"
    kind: str = field(default="azure", init=False)


@dataclass(frozen=True)
class EntrustKeystoreConfig:
    endpoint: str
    vault_id: str
    box_id: str
    username: str
    password: str = field(repr=False)
    ca: str = ""
    kind: str = field(default="entrust", init=False)


KeystoreConfig = (
    FSKeystoreConfig
    | MemoryKeystoreConfig
    | VaultKeystoreConfig
    | FortanixKeystoreConfig
    | GemaltoKeystoreConfig
    | GCPKeystoreConfig
    | AWSKeystoreConfig
    | AzureKeystoreConfig
    | EntrustKeystoreConfig
)


@dataclass(frozen=True)
class ServerConfig:
    admin_identity: str
    tls: TLSConfig
    keystore: KeystoreConfig
    address: str = ""  # empty: use --addr or DEFAULT_ADDRESS
    cache: CacheConfig = CacheConfig()
    log: LogConfig = LogConfig()
    api: dict[str, APIOverride] = field(default_factory=dict)
    policies: tuple[PolicyConfig, ...] = ()  # file order
    keys: tuple[str, ...] = ()  # pre-defined key names, file order
    mlock: bool | None = None  # kes-flask only: True required, False never, None try
    warnings: tuple[str, ...] = ()  # e.g. unknown keys; logged at startup, never fatal

    @property
    def any_skip_auth(self) -> bool:
        """Any ``skip_auth: true`` makes client certificates optional (config.md §4.3)."""
        return any(o.skip_auth for o in self.api.values())
