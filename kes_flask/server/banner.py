"""The startup banner (cli.md §3.2); scripts wait for its last line."""

from __future__ import annotations

import platform
import socket
import string
import sys

from kes_flask import __commit__, __version__
from kes_flask.config.model import ServerConfig
from kes_flask.telemetry import system
from kes_flask.telemetry.logs import slog_level_name

READY_LINE = "=> Server is up and running..."
RELOADED_LINE = "=> Reloading configuration after SIGHUP signal completed."


def _is_identity(value: str) -> bool:
    return len(value) == 64 and all(c in string.hexdigits for c in value)


def _addresses(host: str) -> list[str]:
    if host and host not in ("0.0.0.0", "::"):  # noqa: S104
        return [host]
    found = ["127.0.0.1"]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if address not in found:
                found.append(address)
    except OSError:
        pass
    return found


def banner(
    config: ServerConfig,
    keystore: str,
    host: str,
    port: int,
    api_key: str = "",
    mlock: bool = False,
    hints: tuple[str, ...] = (),
) -> str:
    def row(label: str, value: str) -> str:
        return f"{label:<11}{value}"

    runtime = f"python{platform.python_version()} {system.go_os()}/{system.go_arch()}"
    lines = [
        row("Version", f"{__version__:<22} commit={__commit__}"),
        row("Runtime", f"{runtime:<22} compiler={sys.implementation.name}"),
        row("License", f"{'AGPLv3':<22} https://www.gnu.org/licenses/agpl-3.0.html"),
        "",
        row("KMS", keystore),
    ]
    for index, address in enumerate(_addresses(host)):
        shown = f"[{address}]" if ":" in address else address
        lines.append(row("API" if index == 0 else "", f"· https://{shown}:{port}"))
    lines.append("")
    if api_key:
        lines.append(row("API Key", api_key))
    admin = config.admin_identity
    lines.append(row("Admin", admin if _is_identity(admin) else "<disabled>"))
    lines.append(row("Logs", f"error=stderr level={slog_level_name(config.log.error)}"))
    if config.log.audit <= 0:
        level = "all" if config.log.audit_all else slog_level_name(config.log.audit)
        lines.append(row("", f"audit=stdout level={level}"))
    if mlock:
        lines.append(row("MLock", "enabled"))
    lines.append("")
    for index, hint in enumerate(hints):
        lines.append(row("Try" if index == 0 else "", hint))
    if hints:
        lines.append("")
    return "\n".join(lines)
