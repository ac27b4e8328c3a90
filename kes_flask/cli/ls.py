"""`ls [-a KEY] [-s HOST] [-i | -p] [--json] [PREFIX]`: keys, identities or policies (cli.md §7).

Upstream quirks kept (cli.md §1.2): parse errors carry no "See …" hint, and ``-h`` prints the
usage and then ``Error: pflag: help requested`` with exit status 1.
"""

from __future__ import annotations

import click

from kes_flask.cli.common import CommandError, PflagCommand, insecure_option
from kes_flask.cli.connect import connect, failing_as
from kes_flask.cli.identity import print_list


def _help_then_error(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), err=True)
        raise CommandError("pflag: help requested")


class _LsCommand(PflagCommand):
    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = click.Command.get_help_option(self, ctx)
        if option is not None:
            option.callback = _help_then_error
        return option


@click.command("ls", cls=_LsCommand, help_hint=False)
@click.option("-a", "--api-key", metavar="KEY", help="API key [default: $MINIO_KES_API_KEY].")
@click.option("-s", "--server", metavar="HOST[:PORT]", help="Server [default: $MINIO_KES_SERVER].")
@click.option("--json", "as_json", is_flag=True, help="Print output in JSON format.")
@click.option("-i", "--identity", "identities", is_flag=True, help="List identities.")
@click.option("-p", "--policy", "policies", is_flag=True, help="List policy names.")
@insecure_option
@click.argument("arguments", nargs=-1, metavar="[PREFIX]")
@click.pass_context
def ls(
    ctx: click.Context,
    api_key: str | None,
    server: str | None,
    as_json: bool,
    identities: bool,
    policies: bool,
    insecure: bool,
    arguments: tuple[str, ...],
) -> None:
    """List keys, policies and identities."""
    if identities and policies:
        raise CommandError(
            "'-p / --policy' and '-i / --identity' must not be used at the same time"
        )
    if len(arguments) > 1:
        raise CommandError("too many arguments")
    prefix = arguments[0] if arguments else ""
    client = connect(ctx, insecure, server=server, api_key=api_key)
    with failing_as():
        if identities:
            names, header = client.list_identities(prefix), "Identity"
        elif policies:
            names, header = sorted(client.list_policies(prefix)), "Policy"
        else:
            names, header = client.list_keys(prefix), "Key"
    print_list(names, header, as_json)
