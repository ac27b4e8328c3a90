"""`policy` commands: ls, info, show (cli.md §6). Policies are read-only: defined in the config."""

from __future__ import annotations

import json

import click

from kes_flask.cli.common import (
    CommandError,
    PflagCommand,
    PflagGroup,
    color_option,
    console,
    enclave_option,
    format_time,
    go_time_text,
    insecure_option,
    json_option,
    with_help_hint,
    write,
)
from kes_flask.cli.connect import connect, failing_as
from kes_flask.cli.identity import print_list
from kes_flask.client.types import Policy, PolicyInfo


def _json(value: object, indent: bool) -> None:
    if indent:
        write(json.dumps(value, indent=2) + "\n")
    else:
        write(json.dumps(value, separators=(",", ":")) + "\n")


@click.group(cls=PflagGroup, noun="policy")
def policy() -> None:
    """Manage KES policies."""


@policy.command("ls")
@insecure_option
@json_option
@color_option
@click.argument("arguments", nargs=-1, metavar="[<pattern>]")
@click.pass_context
def policy_ls(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """List policies."""
    if len(arguments) > 1:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    client = connect(ctx, insecure)
    with failing_as("failed to list keys: "):  # sic, as the Go CLI words it
        names = client.list_policies(arguments[0] if arguments else "*")
    print_list(names, "Key", as_json)  # the header is "Key" upstream too (Decision C15)


@policy.command("info", cls=PflagCommand, hint_path="policy show")  # sic, Decision C15
@insecure_option
@json_option
@color_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="<name>")
@click.pass_context
def policy_info(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """Get information about a policy."""
    if not arguments:
        raise CommandError(ctx.command.hint(ctx, "no policy name specified"))  # type: ignore[attr-defined]
    client = connect(ctx, insecure)
    with failing_as():
        raw = client.wire.describe_policy(arguments[0])
    info = PolicyInfo.from_json(arguments[0], raw)
    if as_json:
        body = {"name": info.name, "created_at": go_time_text(raw.get("created_at"))}
        if info.created_by:
            body["created_by"] = info.created_by
        _json(body, console(ctx).is_terminal())
        return
    text = f"{'Name':<11} {info.name}\n"
    if info.created_at.year > 1:
        text += f"{'Date':<11} {format_time(info.created_at, local=True)}\n"
    if info.created_by:
        text += f"{'Created by':<11} {info.created_by}\n"
    write(text)


@policy.command("show")
@insecure_option
@enclave_option
@json_option
@click.argument("arguments", nargs=-1, metavar="<name>")
@click.pass_context
def policy_show(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """Display a policy."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no policy name specified"))
    client = connect(ctx, insecure)
    name = arguments[0]
    with failing_as(f"failed to show policy '{name}': "):
        raw = client.wire.read_policy(name)
    rules = Policy.from_json(name, raw)
    terminal = console(ctx).is_terminal()
    if as_json or not terminal:
        body: dict[str, object] = {}
        if rules.allow:
            body["allow"] = {rule: {} for rule in rules.allow}
        if rules.deny:
            body["deny"] = {rule: {} for rule in rules.deny}
        body["created_at"] = go_time_text(raw.get("created_at"))
        if rules.created_by:
            body["created_by"] = rules.created_by
        _json(body, terminal)
        return
    text = ""
    if rules.allow:
        text += "Allow:\n" + "".join(f"  · {rule}\n" for rule in rules.allow)
    if rules.allow and rules.deny:
        text += "\n"
    if rules.deny:
        text += "Deny:\n" + "".join(f"  · {rule}\n" for rule in rules.deny)
    text += "\n"
    if rules.created_at.year > 1:
        text += f"\nCreated at: {format_time(rules.created_at, local=True)}\n"
    text += f"Created by: {rules.created_by or '<unknown>'}\n"
    write(text)
