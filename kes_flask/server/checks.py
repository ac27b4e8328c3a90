"""Checks of the files a server runs on, each answered with what to change.

They say what start-up tolerates but an operator should hear about (a certificate that expires
within 30 days, a private key or key directory readable by others) and what ``doctor`` must
reject before MinIO finds out (an expired certificate, a key that does not belong to the
certificate, a certificate without the names clients verify). Nothing here reads or logs key
material beyond what it needs to compare public keys.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

EXPIRY_WARNING = timedelta(days=30)

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    status: str  # OK, WARN or FAIL
    area: str  # "config", "tls", "keystore", "policy"
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "area": self.area, "message": self.message, "fix": self.fix}


def permission_finding(path: str, what: str, area: str) -> Finding | None:
    """A WARN when other users may read or write the file ``path`` (for a directory: write,
    which lets them add or remove keys); None when it is private enough.

    ``what`` starts the message, e.g. "tls.key: the private key".
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        is_directory = os.path.isdir(path)
    except OSError:
        return None  # absence and unreadability are reported by the caller's own check
    group, others = (0o020, 0o002) if is_directory else (0o070, 0o007)
    who = " and ".join(w for w, bits in (("group", group), ("others", others)) if mode & bits)
    if not who:
        return None
    return Finding(
        WARN,
        area,
        f"{what} '{path}' is accessible by {who} (mode {mode:04o})",
        f"run 'chmod {700 if is_directory else 600} {path}'",
    )


def key_directory_findings(directory: str) -> list[Finding]:
    """The FS keystore's directory and key files should be private to the server's user: a key
    file others can read is a master key anyone on the host can copy."""
    findings = []
    found = permission_finding(directory, "keystore.fs.path: the key directory", "keystore")
    if found is not None:
        findings.append(found)
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return findings  # a missing directory is created later; unreadable: the open fails
    exposed = [
        name
        for name in entries
        if permission_finding(os.path.join(directory, name), "", "keystore") is not None
    ]
    if exposed:
        shown = ", ".join(exposed[:5]) + (
            f" and {len(exposed) - 5} more" if len(exposed) > 5 else ""
        )
        message = (
            f"keystore.fs.path: {len(exposed)} key file(s) in '{directory}' are readable by "
            f"other users ({shown})"
        )
        fix = f"run 'chmod 600 {os.path.join(directory, '*')}'"
        findings.append(Finding(WARN, "keystore", message, fix))
    return findings


def certificate_findings(
    cert_path: str,
    certificate: x509.Certificate,
    private_key_public_bytes: bytes | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Validity period, names and (when given) key match of the server's leaf certificate."""
    now = now or datetime.now(timezone.utc)
    findings: list[Finding] = []
    subject = f"tls.cert: the server certificate '{cert_path}'"
    not_after, not_before = certificate.not_valid_after_utc, certificate.not_valid_before_utc
    until = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if not_after <= now:
        message = f"{subject} expired on {until} and clients refuse the connection"
        findings.append(
            Finding(FAIL, "tls", message, "replace the file with a renewed certificate")
        )
    elif not_after - now < EXPIRY_WARNING:
        message = f"{subject} expires in {(not_after - now).days} day(s), on {until}"
        fix = "renew it (the server picks up a replaced file within 15 minutes)"
        findings.append(Finding(WARN, "tls", message, fix))
    if not_before > now:
        message = f"{subject} is not valid before {not_before:%Y-%m-%d %H:%M UTC}"
        findings.append(Finding(FAIL, "tls", message, "check the clock or the certificate"))
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n.value) for n in names]
    except x509.ExtensionNotFound:
        sans = []
    if not sans:
        findings.append(
            Finding(
                FAIL,
                "tls",
                f"{subject} has no subject alternative names: MinIO and other Go clients refuse it",
                "issue it with the server's DNS names and IPs, e.g. "
                "kes-flask identity new --ip 10.0.0.5 --dns kes.example.net kes-server",
            )
        )
    if private_key_public_bytes is not None:
        cert_public = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        if cert_public != private_key_public_bytes:
            findings.append(
                Finding(
                    FAIL,
                    "tls",
                    f"tls.key: the private key does not belong to certificate '{cert_path}'",
                    "set tls.key and tls.cert to a matching pair",
                )
            )
    if not findings:
        valid = f"valid until {until}, names: {', '.join(sans)}"
        findings.append(Finding(OK, "tls", f"{subject} is {valid}"))
    return findings
