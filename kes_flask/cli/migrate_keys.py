"""``kes-flask migrate``: copy keys between two configured keystores (cli.md §11).

Unlike Go KES there is no ``--force``: a migration never overwrites a key, because replacing a
master key makes every object encrypted under it unreadable. Existing names are skipped and
listed (``--merge`` is accepted for Go KES scripts and means just that), or, with
``--strict``, the migration refuses to start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from kes_flask.config.errors import ConfigError
from kes_flask.keystore.base import Keystore, KeystoreError
from kes_flask.keystore.migrate import (
    MigrationConflict,
    MigrationReport,
    matching_names,
    migrate_keys,
)


@contextmanager
def _open(path: str, role: str) -> Iterator[Keystore]:
    from kes_flask.config.loader import load_config
    from kes_flask.keystore import open_keystore

    try:
        config = load_config(path)
    except ConfigError as err:
        raise click.ClickException(f"{role} config '{path}': {err}") from None
    try:
        store = open_keystore(config.keystore, probe=True)  # a refused login fails here
    except ConfigError as err:
        raise click.ClickException(f"{role} keystore of '{path}': {err}") from None
    try:
        yield store
    finally:
        store.close()


def _plural(count: int) -> str:
    return "key " if count == 1 else "keys"


@click.command("migrate", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pattern", default="*", required=False)
@click.option("--from", "source_path", metavar="FILE", help="Config file of the source keystore.")
@click.option("--to", "target_path", metavar="FILE", help="Config file of the target keystore.")
@click.option("--dry-run", is_flag=True, help="Show what would be migrated; write nothing.")
@click.option("--strict", is_flag=True, help="Fail, before copying anything, if a key exists.")
@click.option("--merge", is_flag=True, help="Skip keys that exist at the target (the default).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print no progress.")
@click.option("-f", "--force", is_flag=True, hidden=True)
@click.option("-s", "--server", hidden=True)
def migrate_keys_command(
    pattern: str,
    source_path: str | None,
    target_path: str | None,
    dry_run: bool,
    strict: bool,
    merge: bool,
    as_json: bool,
    quiet: bool,
    force: bool,
    server: str | None,
) -> None:
    """Copy the keys matching PATTERN (a glob, default '*') from one keystore to another.

    Values are copied byte for byte; keys that already exist at the target are never
    overwritten.
    """

    if server is not None:
        raise click.ClickException("migrating to a MinIO KMS server is not supported")
    if force:
        raise click.ClickException(
            "'--force' is not supported: kes-flask never overwrites a key at the target. "
            "Delete the key there first (kes-flask key rm NAME) if you really mean to replace it"
        )
    if strict and merge:
        raise click.ClickException("'--strict' and '--merge' flags are mutually exclusive")
    if not source_path:
        raise click.ClickException("no source specified. Use '--from' flag")
    if not target_path:
        raise click.ClickException("missing migration target. Use '--to' flag")

    with _open(source_path, "source") as source, _open(target_path, "target") as target:
        show_progress = not (quiet or as_json)
        if show_progress:
            click.echo("Starting key migration:\n")
        try:
            names = matching_names(source, pattern)
            options = {"names": names, "dry_run": dry_run, "strict": strict}
            if show_progress and sys.stderr.isatty():
                with click.progressbar(
                    length=len(names), label="Migrating", file=sys.stderr
                ) as bar:
                    report = migrate_keys(
                        source, target, pattern, progress=lambda _name: bar.update(1), **options
                    )
            else:
                report = migrate_keys(source, target, pattern, **options)
        except MigrationConflict as err:
            raise click.ClickException(str(err)) from None
        except KeystoreError as err:
            raise click.ClickException(f"migration stopped: {err}") from None

    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    _print_summary(report)


def _print_summary(report: MigrationReport) -> None:
    done, dry_run = len(report.copied), report.dry_run
    if done:
        outcome = "(dry run)" if dry_run else "successfully!"
        click.echo(
            f"{'Would migrate' if dry_run else 'Migrated'} {done:6d} {_plural(done)} {outcome}"
        )
    elif dry_run:
        click.echo("Dry run: no keys would be migrated.")
    else:
        click.echo("Migration succeeded! No keys migrated.")
    for names, what in (
        (report.skipped, "already at the target"),
        (report.vanished, "deleted at the source meanwhile"),
    ):
        if names:
            label = "Skipped" if names is report.skipped else "Vanished"
            click.echo(
                f"{label:8} {len(names):6d} {_plural(len(names))} {what}: {', '.join(names)}"
            )
    click.echo(
        f"Summary: {report.matched} matching, {done} {'to migrate' if dry_run else 'migrated'}, "
        f"{len(report.skipped)} skipped, {len(report.vanished)} vanished"
    )
