"""``kes-flask migrate-config``: convert a legacy KES config (TOML or old YAML) to current YAML."""

from __future__ import annotations

import click


@click.command("migrate-config", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=click.Path(dir_okay=False))
def migrate_config(path: str) -> None:
    """Print PATH converted to the current YAML format; review before use."""
    from kes_flask.config.migrate import migrate_config as convert

    click.echo(convert(path), nl=False)
