"""What every command group shares: the terminal, the ``Error: …`` line, pflag-style parsing.

cli.md §1: errors are one ``Error: <message>`` line on stderr with exit status 1; ``-h/--help``
prints the usage to stderr with exit status 2; whether "a terminal" is attached (stdout OR
stderr, §1.5) selects between the human and the machine form of an output.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click

HELP_OPTIONS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_DURATION_TERM = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration is int64 nanoseconds


# --- terminal ------------------------------------------------------------------------------------


def _stdout_or_stderr_is_tty() -> bool:
    return sys.stdout.isatty() or sys.stderr.isatty()


def _stdout_is_styled() -> bool:
    """Escape sequences only where termenv (lipgloss) would emit them: a tty whose TERM or
    COLORTERM announces colours; a plain ``TERM=vt100`` or no TERM gets plain text."""
    if not sys.stdout.isatty():
        return False
    if os.environ.get("COLORTERM", "").lower() in ("24bit", "truecolor", "yes", "true"):
        return True
    term = os.environ.get("TERM", "")
    if term in ("xterm-kitty", "wezterm", "xterm-ghostty", "linux"):
        return True
    return any(part in term for part in ("256color", "color", "ansi"))


def _read_password_from_terminal(prompt: str) -> str:
    """Read without echo; the prompt goes to stderr so stdout stays clean for the output."""
    if not sys.stderr.isatty():
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
    return getpass.getpass(prompt, stream=sys.stderr)


@dataclass(frozen=True)
class Console:
    """What the commands need from the terminal. Pass another one as click ``obj`` to override."""

    is_terminal: Callable[[], bool] = _stdout_or_stderr_is_tty  # human or machine output
    styled: Callable[[], bool] = _stdout_is_styled  # bold text (lipgloss looks at stdout only)
    read_password: Callable[[str], str] = _read_password_from_terminal

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.styled() else text


def console(ctx: click.Context) -> Console:
    return ctx.find_object(Console) or Console()


def write(text: str) -> None:
    """Write to stdout as is: ``Console`` already decided about escape sequences."""
    click.echo(text, nl=False, color=True)


def write_json(value: Any, indent: bool = False) -> None:
    """Go's ``json.Encoder``: compact (or two-space indented) and a newline."""
    if indent:
        write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    else:
        write(json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n")


def bordered(lines: Sequence[str]) -> str:
    """The invisible lipgloss border: a blank frame of one space around the padded lines."""
    widths = [len(_ANSI_ESCAPE.sub("", line)) for line in lines]
    width = max(widths)
    framed = [f" {line}{' ' * (width - w)} " for line, w in zip(lines, widths, strict=True)]
    blank = " " * (width + 2)
    return "\n".join([blank, *framed, blank]) + "\n"


# --- errors and parsing --------------------------------------------------------------------------


class CommandError(click.ClickException):
    """Printed as ``Error: <message>`` on stderr, exit status 1 (cli.md §1.3)."""


class HelpRequested(click.exceptions.Exit):
    """``-h/--help``: the usage went to stderr; exit status 2 (cli.md §1.3)."""

    def __init__(self) -> None:
        super().__init__(2)


def _show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), err=True)
        raise HelpRequested()


class HelpToStderr:
    """Mixin: ``-h/--help`` prints to stderr and exits 2, as every ``kes`` command does."""

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.callback = _show_help
        return option


def with_help_hint(ctx: click.Context, reason: str) -> str:
    return f"{reason}. See '{ctx.command_path} --help'"


def os_error_text(err: OSError, path: str) -> str:
    """Go's ``open <path>: <reason>`` form of a file error."""
    reason = err.strerror or str(err)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise CommandError(os_error_text(err, path)) from None


def _flag_text(option_name: str) -> str:
    return option_name if option_name.startswith("--") else f"'{option_name[1:]}' in {option_name}"


def pflag_reason(err: click.UsageError) -> str:
    """The text Go's pflag gives for a parse error (cli.md §1.2)."""
    if isinstance(err, click.NoSuchOption):
        long_form = err.option_name.startswith("--")
        prefix = "unknown flag" if long_form else "unknown shorthand flag"
        return f"{prefix}: {_flag_text(err.option_name)}"
    if isinstance(err, click.BadOptionUsage) and "requires an argument" in err.message:
        return f"flag needs an argument: {_flag_text(err.option_name)}"
    if isinstance(err, click.BadParameter):
        name = err.param.opts[0] if err.param is not None and err.param.opts else "value"
        return f'invalid argument for "{name}" flag: {err.message.rstrip(".")}'
    if err.message.startswith("Got unexpected extra argument"):
        return "too many arguments"
    return err.message.rstrip(".")


class PflagCommand(HelpToStderr, click.Command):
    """A command reporting parse errors like Go's pflag (cli.md §1.2): exit 1, one error line.

    ``help_hint``: whether the message ends in ``. See '<command> --help'``; ``hint_path``
    replaces the command path in that hint (upstream's copy-paste texts, Decision C15).
    """

    def __init__(
        self, *args: Any, help_hint: bool = True, hint_path: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("context_settings", HELP_OPTIONS)
        super().__init__(*args, **kwargs)
        self.help_hint = help_hint
        self.hint_path = hint_path

    def hint(self, ctx: click.Context, reason: str) -> str:
        if self.hint_path is None:
            return with_help_hint(ctx, reason)
        program = ctx.find_root().info_name or "kes"
        return f"{reason}. See '{program} {self.hint_path} --help'"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            reason = pflag_reason(err)
        raise CommandError(self.hint(ctx, reason) if self.help_hint else reason)


class PflagGroup(HelpToStderr, click.Group):
    """A command group: no subcommand → usage (exit 2); unknown → ``"x" is not a … command``."""

    command_class = PflagCommand

    def __init__(self, *args: Any, noun: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", HELP_OPTIONS)
        super().__init__(*args, **kwargs)
        self.noun = noun

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and not self.invoke_without_command:
            click.echo(ctx.get_help(), err=True)
            raise HelpRequested()
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            raise CommandError(with_help_hint(ctx, pflag_reason(err))) from None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if not name.startswith("-") and self.get_command(ctx, name) is None:
            raise CommandError(self.not_a_command(ctx, args))
        return super().resolve_command(ctx, args)

    def not_a_command(self, ctx: click.Context, args: list[str]) -> str:
        """pflag parses the whole line as the group's flags first: an option fails before."""
        for arg in args:
            if arg == "--":
                break
            if arg.startswith("-") and arg not in ("-", "-h", "--help"):
                flag = arg.split("=", 1)[0]
                if flag.startswith("--"):
                    reason = f"unknown flag: {flag}"
                else:
                    reason = f"unknown shorthand flag: '{flag[1:2]}' in {flag}"
                return with_help_hint(ctx, reason)
        return f"\"{args[0]}\" is not a {self.noun} command. See '{ctx.command_path} --help'"


def insecure_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-k", "--insecure", is_flag=True, help="Skip TLS certificate validation.")(
        command
    )


def enclave_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-e/--enclave``: accepted and ignored, a leftover of the stateful KES (cli.md §1.9)."""
    return click.option(
        "-e", "--enclave", metavar="<name>", hidden=True, help="Ignored (stateful KES only)."
    )(command)


def color_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--color",
        type=click.Choice(["auto", "never", "always"]),
        default="auto",
        metavar="<when>",
        help="When to use colored output: auto, never, always.",
    )(command)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


# --- Go formats ----------------------------------------------------------------------------------


def parse_go_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` (``720h``, ``1h30m``, ``1.5s``), with Go's error texts."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    seconds, pos = 0.0, 0
    while pos < len(body):
        term = _DURATION_TERM.match(body, pos)
        assert term is not None  # every group is optional
        whole, fraction, unit = term.groups()
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        seconds += float(f"{whole or 0}.{fraction or 0}") * _DURATION_UNITS[unit]
        pos = term.end()
    if seconds > _MAX_DURATION_SECONDS:
        raise ValueError(f'time: invalid duration "{text}"')
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def format_go_duration(value: timedelta) -> str:
    """Go's ``Duration.String``: ``1h2m3s``, ``1.5s``, ``3ms``, ``850µs``, ``0s``."""
    nanos = round(value.total_seconds() * 1e9)
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    if nanos < 1000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{_trim(f'{nanos / 1e3:.3f}')}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{_trim(f'{nanos / 1e6:.6f}')}ms"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = _trim(f"{rest / 1e9:.9f}") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def format_time(value: datetime, local: bool = False) -> str:
    """``YYYY-MM-DD HH:MM:SS``, in the value's own zone (or the local one)."""
    if local and value.year > 1:
        value = value.astimezone()
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


def rfc3339(value: datetime) -> str:
    """Go's ``time.Time`` JSON form (``Z`` for UTC)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_FRACTION = re.compile(r"\.(\d+)")


def go_time_text(raw: object) -> str:
    """A server timestamp as Go re-encodes it: nanoseconds kept, trailing zeros dropped."""
    if not isinstance(raw, str) or not raw:
        return "0001-01-01T00:00:00Z"
    trimmed = _FRACTION.sub(lambda m: f".{m.group(1).rstrip('0')}".rstrip("."), raw, count=1)
    return trimmed[:-6] + "Z" if trimmed.endswith("+00:00") else trimmed
