"""The ``kes-flask`` command."""

from __future__ import annotations

import os
import sys

import click

from kes_flask import __version__
from kes_flask.config.errors import ConfigError
from kes_flask.server.hardening import MemoryLockError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="kes-flask")
def cli() -> None:
    """kes-flask: a KES-compatible key encryption server for MinIO."""


def _register() -> None:
    from kes_flask.cli.doctor import doctor
    from kes_flask.cli.identity import identity, tool
    from kes_flask.cli.migrate import migrate_config
    from kes_flask.cli.migrate_keys import migrate_keys_command
    from kes_flask.cli.server import server

    for command in (server, identity, tool, migrate_config, migrate_keys_command, doctor):
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        # Outside standalone mode click returns (not raises) the code of ``Exit(code)``.
        code = cli.main(args=argv, prog_name="kes-flask", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 1
    except click.UsageError as err:
        err.show()
        return 2
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        return 1
    except (ConfigError, MemoryLockError) as err:
        click.echo(f"Error: {err}", err=True)
        return 1
    except OSError as err:  # a file or socket the operator pointed at: name it, no traceback
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"Error: {where}{(err.strerror or str(err)).lower()}", err=True)
        return 1
    except Exception as err:  # operators get a message; developers opt in to the traceback
        if os.environ.get("KES_FLASK_TRACEBACK"):
            raise
        click.echo(
            f"Error: unexpected {type(err).__name__}: {err} "
            "(set KES_FLASK_TRACEBACK=1 to see where; please report it)",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
