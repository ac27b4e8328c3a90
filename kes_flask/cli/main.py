"""The ``kes-flask`` command: one module per command group, registered here.

Top-level behaviour follows the Go ``kes`` CLI (cli.md §1-§2): no argument prints the usage
(exit 2); an unknown word is ``"x" is not a kes command``; ``-v`` prints the version block;
``$COMP_LINE`` switches to shell completion before anything else runs.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys

import click

from kes_flask import __commit__, __version__
from kes_flask.cli.common import CommandError, HelpToStderr, PflagGroup, write


def version_text() -> str:
    """The four-line ``kes --version`` block with the Python runtime (Decision C13)."""
    from kes_flask.telemetry import system

    runtime = f"python{platform.python_version()} {system.go_os()}/{system.go_arch()}"
    return (
        f"Version    {__version__:<22} commit={__commit__}\n"
        f"Runtime    {runtime:<22} compiler={sys.implementation.name}\n"
        f"License    {'AGPLv3':<22} https://www.gnu.org/licenses/agpl-3.0.html\n"
        f"Copyright  {'kes-flask authors':<22} successor of MinIO KES (2015-2025 MinIO Inc.)\n"
    )


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        write(version_text())
        ctx.exit(0)


def _auto_completion(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from kes_flask.cli.completion import install

        try:
            write(install(ctx.info_name or "kes-flask"))
        except ValueError as err:
            raise CommandError(str(err)) from None
        ctx.exit(0)


# One module per command group, imported only when its command runs (start-up stays fast).
COMMANDS = {
    "server": ("kes_flask.cli.server", "server"),
    "ls": ("kes_flask.cli.ls", "ls"),
    "key": ("kes_flask.cli.key", "key"),
    "policy": ("kes_flask.cli.policy", "policy"),
    "identity": ("kes_flask.cli.identity", "identity"),
    "log": ("kes_flask.cli.log", "log"),
    "status": ("kes_flask.cli.status", "status"),
    "metric": ("kes_flask.cli.status", "metric"),
    "migrate": ("kes_flask.cli.migrate_keys", "migrate_keys_command"),
    "migrate-config": ("kes_flask.cli.migrate", "migrate_config"),
    "doctor": ("kes_flask.cli.doctor", "doctor"),
    "tool": ("kes_flask.cli.identity", "tool"),
}
# Errors that name the operator's mistake themselves: printed as ``Error: …``.
_OPERATOR_ERRORS = (
    ("kes_flask.config.errors", "ConfigError"),
    ("kes_flask.server.hardening", "MemoryLockError"),
)


class RootGroup(PflagGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if not name.startswith("-") and self.get_command(ctx, name) is None:
            raise CommandError(self.not_a_command(ctx, args))
        return click.Group.resolve_command(self, ctx, args)


@click.group(cls=RootGroup, noun="kes")
@click.option(
    "-v", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
    help="Print version information.",
)  # fmt: skip
@click.option(
    "--auto-completion", is_flag=True, expose_value=False, is_eager=True,
    callback=_auto_completion, help="Install auto-completion for this shell.",
)  # fmt: skip
def cli() -> None:
    """kes-flask: a KES-compatible key encryption server and its client commands."""


@click.command("update", cls=type("UpdateCommand", (HelpToStderr, click.Command), {}))
@click.argument("arguments", nargs=-1)
@click.option("-k", "--insecure", is_flag=True, hidden=True)
@click.option("-d", "--downgrade", is_flag=True, hidden=True)
@click.option("-o", "--output", hidden=True)
@click.option("--os", "os_name", hidden=True)
@click.option("--arch", hidden=True)
@click.option("--minisign-key", hidden=True)
def update(**_: object) -> None:
    """Not supported: upgrade the package with pip (Decision C9)."""
    raise CommandError("self-update is not supported; upgrade the package with pip")


cli.add_command(update)


def main(argv: list[str] | None = None) -> int:
    if argv is None and _complete_from_environment():
        return 0
    try:
        # Outside standalone mode click returns (not raises) the code of ``Exit(code)``.
        code = cli.main(args=argv, prog_name="kes-flask", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.exceptions.Abort:
        return 1  # interrupted (cli.md §1.8)
    except click.UsageError as err:  # commands outside the kes surface (doctor, migrate-config)
        err.show()
        return 2
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        return 1
    except KeyboardInterrupt:
        return 1
    except Exception as err:  # noqa: BLE001 - operators get a message, not a traceback
        if not isinstance(err, _operator_errors()):
            return _unexpected(err)
        click.echo(f"Error: {err}", err=True)
        return 1
    return code if isinstance(code, int) else 0


def _unexpected(err: Exception) -> int:
    if isinstance(err, OSError):  # a file or socket the operator pointed at: name it
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"Error: {where}{(err.strerror or str(err)).lower()}", err=True)
        return 1
    if os.environ.get("KES_FLASK_TRACEBACK"):  # developers opt in to the traceback
        raise err
    click.echo(
        f"Error: unexpected {type(err).__name__}: {err} "
        "(set KES_FLASK_TRACEBACK=1 to see where; please report it)",
        err=True,
    )
    return 1


def _operator_errors() -> tuple[type[BaseException], ...]:
    """The operator-error classes of the modules loaded so far (others cannot be raised)."""
    return tuple(
        getattr(sys.modules[module], name)
        for module, name in _OPERATOR_ERRORS
        if module in sys.modules
    )


def _complete_from_environment() -> bool:
    from kes_flask.cli.completion import complete, completion_requested

    if not completion_requested(os.environ):
        return False
    for word in complete(os.environ["COMP_LINE"]):
        sys.stdout.write(word + "\n")
    return True


if __name__ == "__main__":
    sys.exit(main())
