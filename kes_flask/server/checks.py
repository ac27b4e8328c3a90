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
    which lets them add or remove keys); None when it is private enough."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # absence and unreadability are reported by the caller's own check
    exposed = stat.S_IWGRP | stat.S_IWOTH if stat.S_ISDIR(mode) else stat.S_IRWXG | stat.S_IRWXO
    if not mode & exposed:
        return None
    wanted = "700" if stat.S_ISDIR(mode) else "600"
    return Finding(
        WARN,
        area,
        f"{what} '{path}' is accessible by other users (mode {stat.S_IMODE(mode):04o})",
        f"chmod {wanted} {path}",
    )


def certificate_findings(
    cert_path: str,
    certificate: x509.Certificate,
    private_key_public_bytes: bytes | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Validity period, names and (when given) key match of the server's leaf certificate."""
    now = now or datetime.now(timezone.utc)
    findings: list[Finding] = []
    renew = f"issue a new certificate and replace '{cert_path}' (kes-flask identity new --help)"
    not_after, not_before = certificate.not_valid_after_utc, certificate.not_valid_before_utc
    if not_after <= now:
        findings.append(
            Finding(FAIL, "tls", f"certificate '{cert_path}' expired {not_after:%Y-%m-%d}", renew)
        )
    elif not_after - now < EXPIRY_WARNING:
        days = (not_after - now).days
        findings.append(
            Finding(
                WARN,
                "tls",
                f"certificate '{cert_path}' expires in {days} days ({not_after:%Y-%m-%d})",
                renew,
            )
        )
    if not_before > now:
        findings.append(
            Finding(
                FAIL,
                "tls",
                f"certificate '{cert_path}' is not valid before {not_before:%Y-%m-%d}",
                renew,
            )
        )
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
                f"certificate '{cert_path}' has no subject alternative names: MinIO and other Go "
                "clients refuse it",
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
                    f"the private key does not belong to certificate '{cert_path}'",
                    "set tls.key and tls.cert to a matching pair",
                )
            )
    if not findings:
        until = f"valid until {not_after:%Y-%m-%d}, names: {', '.join(sans)}"
        findings.append(Finding(OK, "tls", f"certificate '{cert_path}' {until}"))
    return findings
