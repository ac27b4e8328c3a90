"""``kes-flask doctor``: would MinIO work with this configuration? Say what to change if not.

The question operators ask most is why MinIO reports *insufficient permissions* or *failed to
connect to KMS*. ``doctor`` answers it offline: it validates the config the way the server
does, checks the TLS files and the keystore, connects to the keystore once, and — given
MinIO's identity — shows which of the API paths MinIO calls its policy allows, with the exact
YAML lines that would fix a denial. The exit code is 0 only when nothing would stop MinIO.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import click

from kes_flask.auth.access import Decision, explain, minio_paths, suggested_rule
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import FSKeystoreConfig, ServerConfig
from kes_flask.server.checks import (
    FAIL,
    OK,
    WARN,
    Finding,
    certificate_findings,
    key_directory_findings,
    permission_finding,
)

_HEX_IDENTITY = re.compile(r"[0-9a-f]{64}")
DEFAULT_KEY_NAME = "minio-default-key"


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    identity: str = ""
    policy: str = ""
    paths: list[tuple[bool, str, Decision]] = field(default_factory=list)  # required, rule, …

    @property
    def minio_works(self) -> bool:
        return not any(f.status == FAIL for f in self.findings)

    def add(self, status: str, area: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(status, area, message, fix))


def _load(path: str, diagnosis: Diagnosis) -> ServerConfig | None:
    from kes_flask.auth.policy import PolicySet
    from kes_flask.config.loader import load_config

    try:
        config = load_config(path)
        PolicySet.from_config(config)
    except ConfigError as err:
        diagnosis.add(FAIL, "config", f"{path}: {err}", f"fix the field named above in {path}")
        return None
    diagnosis.add(OK, "config", f"{path} is a valid configuration")
    for warning in config.warnings:
        diagnosis.add(WARN, "config", f"{path}: {warning}")
    admin = config.admin_identity
    if not _HEX_IDENTITY.fullmatch(admin):
        diagnosis.add(
            OK if admin == "disabled" else WARN,
            "config",
            f"admin.identity '{admin}' is not an identity: the admin API is disabled",
            "" if admin == "disabled" else "compute an identity with: kes-flask identity of FILE",
        )
    return config


def _check_tls(config: ServerConfig, diagnosis: Diagnosis) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from kes_flask.auth.certs import load_certificate_chain_pem, load_private_key_pem

    tls = config.tls
    try:
        with open(tls.cert, "rb") as handle:
            chain = load_certificate_chain_pem(handle.read())
        with open(tls.key, "rb") as handle:
            key = load_private_key_pem(handle.read(), tls.password.encode() or None)
    except (OSError, ValueError) as err:
        diagnosis.add(
            FAIL, "tls", f"cannot load tls.cert/tls.key: {err}", "check tls.key and tls.cert"
        )
        return
    if not chain:
        diagnosis.add(
            FAIL, "tls", f"no certificate in '{tls.cert}'", "set tls.cert to a PEM certificate"
        )
        return
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    diagnosis.findings.extend(certificate_findings(tls.cert, chain[0], public))
    finding = permission_finding(tls.key, "tls.key: the private key", "tls")
    if finding is not None:
        diagnosis.findings.append(finding)


def _check_keystore(config: ServerConfig, diagnosis: Diagnosis) -> None:
    from kes_flask.keystore import open_keystore
    from kes_flask.keystore.base import KeystoreError

    store_config = config.keystore
    if isinstance(store_config, FSKeystoreConfig):
        diagnosis.findings.extend(key_directory_findings(store_config.path))
    try:
        store = open_keystore(store_config)
    except ConfigError as err:
        fix = f"check the keystore.{store_config.kind} section and that the service is up"
        diagnosis.add(FAIL, "keystore", f"cannot use the {store_config.kind} keystore: {err}", fix)
        return
    try:
        latency = store.status()
    except KeystoreError as err:
        fix = f"check that the service behind keystore.{store_config.kind} is up and reachable"
        diagnosis.add(FAIL, "keystore", f"{store.description} is unreachable: {err}", fix)
    else:
        diagnosis.add(OK, "keystore", f"{store.description} reachable in {latency * 1000:.1f} ms")
    finally:
        store.close()


def _check_access(config: ServerConfig, identity: str, key_name: str, diagnosis: Diagnosis) -> None:
    from kes_flask.auth.policy import PolicySet

    policies = PolicySet.from_config(config)
    diagnosis.identity = identity
    if policies.is_admin(identity):
        diagnosis.add(
            WARN,
            "policy",
            f"identity {identity} is the admin: MinIO works, but may then call every API",
            "give MinIO its own identity and a policy with only the paths it needs",
        )
        return
    policy = policies.policy_of(identity)
    if policy is None:
        diagnosis.add(
            FAIL,
            "policy",
            f"identity {identity} is assigned to no policy: MinIO gets 'insufficient permissions'",
            "add it to a policy:\npolicy:\n  minio:\n    allow:\n"
            + "".join(f"    - {p.rule}\n" for p in minio_paths(key_name))
            + f"    identities:\n    - {identity}",
        )
        return
    diagnosis.policy = policy.name
    for needed in minio_paths(key_name):
        decision = explain(policies, identity, needed.path)
        diagnosis.paths.append((needed.required, needed.rule, decision))
        if decision.allowed:
            continue
        status = FAIL if needed.required else WARN
        kind = "needs" if needed.required else "should allow"
        if decision.deny_rule:
            fix = f"remove or narrow '- {decision.deny_rule}' under policy.{policy.name}.deny"
        else:
            rule = suggested_rule(policies, identity, needed, key_name)
            fix = f"policy:\n  {policy.name}:\n    allow:\n    - {rule}"
        diagnosis.add(
            status,
            "policy",
            f"MinIO {kind} {needed.path} ({needed.purpose}): {decision.reason}",
            fix,
        )
    if all(decision.allowed for _, _, decision in diagnosis.paths):
        diagnosis.add(
            OK,
            "policy",
            f"policy '{policy.name}' allows everything MinIO calls for key '{key_name}'",
        )


def _identity_of(identity: str | None, cert: str | None, api_key: str | None) -> str | None:
    from kes_flask.auth.identity import APIKey, certificate_identity

    given = [v for v in (identity, cert, api_key) if v]
    if len(given) > 1:
        raise click.UsageError("use only one of --identity, --cert and --api-key")
    if api_key:
        try:
            return APIKey.parse(api_key).identity
        except ValueError as err:
            raise click.ClickException(f"invalid --api-key: {err}") from None
    if cert:
        from kes_flask.auth.certs import load_certificate_chain_pem

        try:
            with open(cert, "rb") as handle:
                chain = load_certificate_chain_pem(handle.read())
        except (OSError, ValueError) as err:
            raise click.ClickException(f"cannot read --cert '{cert}': {err}") from None
        if not chain:
            raise click.ClickException(f"no certificate in --cert '{cert}'")
        from cryptography.hazmat.primitives.serialization import Encoding

        return certificate_identity(chain[0].public_bytes(Encoding.DER))
    return identity


def diagnose(config_path: str, identity: str | None, key_name: str) -> Diagnosis:
    diagnosis = Diagnosis()
    config = _load(config_path, diagnosis)
    if config is None:
        return diagnosis
    _check_tls(config, diagnosis)
    _check_keystore(config, diagnosis)
    if identity:
        _check_access(config, identity, key_name, diagnosis)
    return diagnosis


_MARK = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}


def _render(diagnosis: Diagnosis, key_name: str, identity_given: bool) -> None:
    for finding in diagnosis.findings:
        click.echo(f"[{_MARK[finding.status]}] {finding.area:8} {finding.message}")
        if finding.fix and finding.status != OK:
            for line in finding.fix.splitlines():
                click.echo(f"{'':16}{line}")
    if diagnosis.paths:
        click.echo(f"\nAPI paths MinIO calls for key '{key_name}' as {diagnosis.identity}:")
        for required, _, decision in diagnosis.paths:
            verdict = "allowed" if decision.allowed else "DENIED "
            need = "required   " if required else "recommended"
            click.echo(f"  {verdict} {need} {decision.path:40} {decision.reason}")
    if not identity_given:
        click.echo("\n(pass MinIO's --identity, --cert or --api-key to check its policy)")
    verdict = (
        "MinIO would work with this server."
        if diagnosis.minio_works
        else "MinIO would NOT work: fix the FAIL lines above."
    )
    click.echo("\n" + verdict)


@click.command("doctor", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", required=True, metavar="FILE", help="The server config file."
)
@click.option("--identity", metavar="ID", help="MinIO's identity (hex), as in the policy.")
@click.option(
    "--cert", metavar="FILE", help="MinIO's client certificate (MINIO_KMS_KES_CERT_FILE)."
)
@click.option("--api-key", metavar="KEY", help="MinIO's API key (MINIO_KMS_KES_API_KEY).")
@click.option(
    "--key-name",
    default=DEFAULT_KEY_NAME,
    show_default=True,
    envvar="MINIO_KMS_KES_KEY_NAME",
    help="MinIO's default key (MINIO_KMS_KES_KEY_NAME).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
def doctor(
    config_path: str,
    identity: str | None,
    cert: str | None,
    api_key: str | None,
    key_name: str,
    as_json: bool,
) -> None:
    """Check a config, its files, its keystore and MinIO's access to it.

    Exits 0 only when MinIO would work with this server.
    """
    who = _identity_of(identity, cert, api_key)
    diagnosis = diagnose(config_path, who, key_name)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "minio_works": diagnosis.minio_works,
                    "identity": diagnosis.identity,
                    "policy": diagnosis.policy,
                    "key_name": key_name,
                    "checks": [f.as_dict() for f in diagnosis.findings],
                    "paths": [
                        {
                            "path": d.path,
                            "rule": rule,
                            "required": required,
                            "allowed": d.allowed,
                            "reason": d.reason,
                        }
                        for required, rule, d in diagnosis.paths
                    ],
                }
            )
        )
    else:
        _render(diagnosis, key_name, who is not None)
    if not diagnosis.minio_works:
        raise click.exceptions.Exit(1)
