"""The listen address rule of Go KES: ``[host]:port`` where host is empty or an IP literal."""

from __future__ import annotations

import errno
import socket
from ipaddress import ip_address

from kes_flask.config.errors import ConfigError


def parse_listen_address(address: str) -> tuple[str, int]:
    """Return ``(host, port)``; an empty host means every interface (config.md §4.1)."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ConfigError(f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"address {address}: too many colons in address")
    if host:
        try:
            ip_address(host)
        except ValueError:
            raise ConfigError(f"'{host}' is not a valid IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"address {address}: invalid port")
    return host, int(port)


def gunicorn_bind(host: str, port: int) -> str:
    if not host:
        host = "0.0.0.0"  # noqa: S104 - Go KES's ":7373" also listens on every interface
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_available(host: str, port: int) -> None:
    """Fail at once, like Go KES, when the address is taken (gunicorn would retry for 5 s)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "0.0.0.0", port))  # noqa: S104 - the address we are asked to serve
        except OSError as err:
            reason = "address already in use" if err.errno == errno.EADDRINUSE else err.strerror
            raise ConfigError(f"listen tcp {gunicorn_bind(host, port)}: bind: {reason}") from None
