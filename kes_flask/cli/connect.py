"""Connect a command to its KES server(s): endpoints and credentials from the environment.

Argument checks come first (usage errors win), then this (cli.md §1.7): the settings, then the
client. SDK errors become ``Error: …`` lines with the command's prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from kes_flask.cli.common import CommandError, console
from kes_flask.client import Client, KesError
from kes_flask.client.environment import SettingsError, from_environment


def connect(
    ctx: click.Context, insecure: bool, server: str | None = None, api_key: str | None = None
) -> Client:
    """A client for the command; ``server``/``api_key`` are ``kes ls``'s ``-s``/``-a``."""
    ask = console(ctx).read_password
    try:
        settings = from_environment(
            server=server,
            api_key=api_key,
            password=lambda: ask("Enter password for private key: "),
        )
    except SettingsError as err:
        raise CommandError(str(err)) from None
    try:
        return Client(settings.endpoints, client_pem=settings.credentials_pem, insecure=insecure)
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None


@contextmanager
def failing_as(prefix: str = "") -> Iterator[None]:
    """Turn SDK errors into ``Error: <prefix><message>`` (exit 1)."""
    try:
        yield
    except KesError as err:
        raise CommandError(f"{prefix}{err}") from None
