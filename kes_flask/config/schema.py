"""The structure of the YAML config file, one marshmallow Schema per section (config.md §4).

These schemas do the structure/type layer only: they turn the YAML tree into plain dicts of
typed values (strings, nanosecond durations, bools, tuples). Which values are *required* and how
they relate is decided afterwards by ``validate`` in the upstream order, because Go KES reports
those problems with fixed ``kesconf:`` messages. Unknown keys are excluded here and reported as
warnings by ``unknown``. Field metadata (``description``, ``env``, ``default``, ``secret``,
``presence``) is the source for the configuration reference.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema

from .fields import (
    Boolean,
    Duration,
    NamedSections,
    OptionalBoolean,
    Section,
    SectionList,
    String,
    StringList,
)


class ConfigSchema(Schema):
    """Base: unknown keys are ignored like in Go KES (they are warned about separately)."""

    class Meta:
        unknown = EXCLUDE


# --- admin, tls ---------------------------------------------------------------------------------


class AdminSchema(ConfigSchema):
    identity = String(
        "Identity (SHA-256 of a client certificate's public key) allowed to call every API. "
        "Required; a value that is not an identity, e.g. 'disabled', disables the admin.",
        default=None,
        required_field=True,
    )


class TLSProxyHeaderSchema(ConfigSchema):
    cert = String("Header that carries the forwarded client certificate (parsed, unused).")


class TLSProxySchema(ConfigSchema):
    identities = StringList(
        "Identities of TLS-terminating proxies in front of the server (parsed and checked, "
        "no runtime effect, like Go KES)."
    )
    header = Section(TLSProxyHeaderSchema, "Proxy header settings.")


class TLSSchema(ConfigSchema):
    key = String("Path of the server's PEM private key.", default=None, required_field=True)
    cert = String(
        "Path of the server's PEM certificate (chain); needs a DNS or IP SAN.",
        default=None,
        required_field=True,
    )
    password = String("Password of an encrypted private key.", secret=True)
    auth = String(
        "Client certificate check: 'off' (any certificate, chain not verified) or 'on' "
        "(verified against 'ca' and the system roots). Case-insensitive.",
        default="off",
    )
    ca = String("File or directory of PEM CA certificates trusted for client certificates.")
    proxy = Section(TLSProxySchema, "TLS proxies in front of the server.")


# --- cache, log, api, policy, keys --------------------------------------------------------------


class CacheExpirySchema(ConfigSchema):
    any = Duration("Drop any cached key after this time; 0 or unset means 5m.", default="5m")
    unused = Duration(
        "Drop a cached key not used for this time; 0 or unset means 30s.", default="30s"
    )
    offline = Duration(
        "Keep serving cached keys this long while the keystore is unreachable; 0 disables.",
        default="0s",
    )


class CacheSchema(ConfigSchema):
    expiry = Section(CacheExpirySchema, "Expiry of keys in the in-memory key cache.")


class LogSchema(ConfigSchema):
    error = String(
        "Minimum level of the error log on stderr: debug, info, warn, error (+N), an integer, "
        "'on' (= info) or 'off'.",
        default="info",
    )
    audit = String(
        "Minimum level of the audit log on stdout (events are INFO): any level above INFO, "
        "e.g. 'off', turns it off; 'all' (kes-flask only) also audits every use of a key and "
        "every denied request.",
        default="info",
    )


class APIPathSchema(ConfigSchema):
    skip_auth = Boolean(
        "Serve this API without authentication; any true also makes client certificates "
        "optional for the TLS handshake.",
        default=False,
    )
    timeout = Duration(
        "Response deadline for this API; 0 or unset keeps the built-in default.", default=None
    )


class PolicySchema(ConfigSchema):
    allow = StringList("API path patterns the policy allows (not env-expanded).", env=False)
    deny = StringList("API path patterns the policy denies; deny wins (no env).", env=False)
    identities = StringList("Identities the policy is assigned to.")


class KeyItemSchema(ConfigSchema):
    name = String("Name of a key that is created at startup if it does not exist.", default=None)


# --- keystores (config.md §4.9) -----------------------------------------------------------------


class FSSchema(ConfigSchema):
    path = String(
        "Directory holding one file per key; created if missing.", default=None, required_field=True
    )


class VaultAppRoleSchema(ConfigSchema):
    engine = String("AppRole auth mount path.", default="approle")
    namespace = String("Namespace for the login only ('' = vault.namespace, '/' = root).")
    id = String("AppRole role ID.", default=None, required_field=True)
    secret = String("AppRole secret ID.", default=None, secret=True, required_field=True)


class VaultKubernetesSchema(ConfigSchema):
    engine = String("Kubernetes auth mount path.", default="kubernetes")
    namespace = String("Namespace for the login only ('' = vault.namespace, '/' = root).")
    role = String("Vault role to log in as.")
    jwt = String(
        "Service account JWT, or the path of a file containing it (any value with a '/'); the "
        "file must be readable at load time and is re-read at every login.",
        default=None,
        secret=True,
        required_field=True,
    )


class VaultTransitSchema(ConfigSchema):
    engine = String("Transit engine mount path.", default="transit")
    key = String("Transit key that encrypts stored keys.", default=None, required_field=True)


class VaultTLSSchema(ConfigSchema):
    key = String("Client private key for mTLS to Vault (needs 'cert').")
    cert = String("Client certificate for mTLS to Vault (needs 'key').")
    ca = String("File or directory of PEM CAs; when set, only these are trusted for Vault.")


class VaultStatusSchema(ConfigSchema):
    ping = Duration(
        "Interval of the background seal-status probe; must not be negative.", default="15s"
    )


class VaultSchema(ConfigSchema):
    endpoint = String("Vault URL, e.g. https://127.0.0.1:8200.", default=None, required_field=True)
    engine = String("K/V secrets engine mount path.", default="kv")
    version = String("K/V engine API version: v1 or v2.", default="v1")
    namespace = String("Vault Enterprise namespace.")
    prefix = String("Path prefix inside the K/V engine.")
    approle = Section(
        VaultAppRoleSchema, "AppRole login (exactly one of approle, kubernetes).", presence=True
    )
    kubernetes = Section(
        VaultKubernetesSchema,
        "Kubernetes login (exactly one of approle, kubernetes).",
        presence=True,
    )
    transit = Section(
        VaultTransitSchema, "Encrypt stored keys with a Vault transit key.", presence=True
    )
    tls = Section(VaultTLSSchema, "TLS settings for connections to Vault.")
    status = Section(VaultStatusSchema, "Vault health probing.")


class CAOnlyTLSSchema(ConfigSchema):
    ca = String("File or directory of PEM CAs for verifying the keystore's certificate.")


class FortanixCredentialsSchema(ConfigSchema):
    key = String("Fortanix application API key.", default=None, secret=True, required_field=True)


class FortanixSDKMSSchema(ConfigSchema):
    endpoint = String("Fortanix SDKMS URL.", default=None, required_field=True)
    group_id = String("Group for newly created keys.")
    credentials = Section(FortanixCredentialsSchema, "Fortanix login.")
    tls = Section(CAOnlyTLSSchema, "TLS settings; a CA set here replaces the system roots.")


class FortanixSchema(ConfigSchema):
    sdkms = Section(FortanixSDKMSSchema, "Fortanix SDKMS keystore.", presence=True)


class GemaltoCredentialsSchema(ConfigSchema):
    token = String("KeySecure refresh token.", default=None, secret=True, required_field=True)
    domain = String("KeySecure domain ('' = root domain).")


class GemaltoKeySecureSchema(ConfigSchema):
    endpoint = String("KeySecure / CipherTrust Manager URL.", default=None, required_field=True)
    credentials = Section(GemaltoCredentialsSchema, "KeySecure login.")
    tls = Section(CAOnlyTLSSchema, "TLS settings; a CA set here replaces the system roots.")


class GemaltoSchema(ConfigSchema):
    keysecure = Section(
        GemaltoKeySecureSchema, "Thales CipherTrust Manager / KeySecure keystore.", presence=True
    )


class GCPCredentialsSchema(ConfigSchema):
    client_email = String("Service account e-mail.")
    client_id = String("Service account client ID.")
    private_key_id = String("Service account private key ID.")
    private_key = String(
        "Service account private key (PEM; '\\n' sequences become newlines).", secret=True
    )


class GCPSecretManagerSchema(ConfigSchema):
    project_id = String("GCP project ID.", default=None, required_field=True)
    endpoint = String("Secret Manager endpoint override ('' = Google's default).")
    scopes = StringList("OAuth scopes ([] = cloud-platform).")
    credentials = Section(
        GCPCredentialsSchema, "Service account; all empty = application default credentials."
    )


class GCPSchema(ConfigSchema):
    secretmanager = Section(GCPSecretManagerSchema, "GCP Secret Manager keystore.", presence=True)


class AWSCredentialsSchema(ConfigSchema):
    accesskey = String("AWS access key ID.")
    secretkey = String("AWS secret access key.", secret=True)
    token = String("AWS session token.", secret=True)


class AWSSecretsManagerSchema(ConfigSchema):
    endpoint = String(
        "Secrets Manager endpoint, e.g. secretsmanager.us-east-2.amazonaws.com.",
        default=None,
        required_field=True,
    )
    region = String("AWS region.", default=None, required_field=True)
    kmskey = String("KMS key that encrypts new secrets ('' = AWS default key).")
    credentials = Section(
        AWSCredentialsSchema, "Static credentials; all empty = the default AWS credential chain."
    )


class AWSSchema(ConfigSchema):
    secretsmanager = Section(
        AWSSecretsManagerSchema, "AWS Secrets Manager keystore.", presence=True
    )


class AzureCredentialsSchema(ConfigSchema):
    tenant_id = String("Tenant ID.", default=None, required_field=True)
    client_id = String("Client (application) ID.", default=None, required_field=True)
    client_secret = String("Client secret.", default=None, secret=True, required_field=True)


class AzureManagedIdentitySchema(ConfigSchema):
    client_id = String("Client ID of the managed identity.", default=None, required_field=True)


class AzureKeyVaultSchema(ConfigSchema):
    endpoint = String(
        "Key Vault URL, e.g. https://my-vault.vault.azure.net.", default=None, required_field=True
    )
    credentials = Section(
        AzureCredentialsSchema,
        "Client secret login (at most one of credentials, managed_identity).",
        presence=True,
    )
    managed_identity = Section(
        AzureManagedIdentitySchema,
        "Managed identity login (at most one of credentials, "
        "managed_identity); neither = default Azure credential chain.",
        presence=True,
    )


class AzureSchema(ConfigSchema):
    keyvault = Section(AzureKeyVaultSchema, "Azure Key Vault keystore.", presence=True)


class EntrustCredentialsSchema(ConfigSchema):
    username = String("KeyControl user name.", default=None, required_field=True)
    password = String("KeyControl password.", default=None, secret=True, required_field=True)


class EntrustKeyControlSchema(ConfigSchema):
    endpoint = String("KeyControl URL.", default=None, required_field=True)
    vault_id = String("KeyControl vault ID.", default=None, required_field=True)
    box_id = String("KeyControl box name or ID.", default=None, required_field=True)
    credentials = Section(EntrustCredentialsSchema, "KeyControl login.")
    tls = Section(CAOnlyTLSSchema, "TLS settings; a CA set here is added to the system roots.")


class EntrustSchema(ConfigSchema):
    keycontrol = Section(EntrustKeyControlSchema, "Entrust KeyControl keystore.", presence=True)


class LegacyKESTLSSchema(ConfigSchema):
    cert = String("Unused.")
    key = String("Unused.")
    ca = String("Unused.")


class LegacyKESSchema(ConfigSchema):
    endpoint = StringList("Unused.")
    enclave = String("Unused.")
    tls = Section(LegacyKESTLSSchema, "Unused.")


class KeystoreSchema(ConfigSchema):
    fs = Section(FSSchema, "Filesystem keystore.", presence=True)
    vault = Section(VaultSchema, "HashiCorp Vault K/V keystore.", presence=True)
    fortanix = Section(FortanixSchema, "Fortanix.", presence=True)
    gemalto = Section(GemaltoSchema, "Thales / Gemalto.", presence=True)
    gcp = Section(GCPSchema, "Google Cloud.", presence=True)
    aws = Section(AWSSchema, "Amazon Web Services.", presence=True)
    azure = Section(AzureSchema, "Microsoft Azure.", presence=True)
    entrust = Section(EntrustSchema, "Entrust.", presence=True)
    kes = Section(
        LegacyKESSchema,
        "Left over from old KES versions; accepted and ignored.",
        presence=True,
        legacy=True,
    )


# --- the whole file ----------------------------------------------------------------------------


class ConfigFileSchema(ConfigSchema):
    version = String("Config format version: v1 or empty.", env=False)
    address = String("Listen address [ip]:port; --addr overrides it.", default="0.0.0.0:7373")
    admin = Section(AdminSchema, "The admin identity.")
    tls = Section(TLSSchema, "Server TLS (required).")
    cache = Section(CacheSchema, "Key cache.")
    log = Section(LogSchema, "Console logging.")
    api = NamedSections(APIPathSchema, "Per-API overrides, keyed by API path, e.g. /v1/status.")
    policy = NamedSections(PolicySchema, "Access policies, keyed by policy name (file order kept).")
    keys = SectionList(KeyItemSchema, "Keys created at startup, in this order.")
    keystore = Section(KeystoreSchema, "Where keys are stored: exactly one backend.")
    mlock = OptionalBoolean(
        "kes-flask only (Go KES ignores it): lock all memory with mlockall so keys never reach "
        "swap. true: required, startup fails if it cannot; false: never; unset: try, warn on "
        "failure. The --mlock flag means true.",
        default=None,
    )
