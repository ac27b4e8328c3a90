"""Recognising the TOML config format of KES v0.7 and older (config.md §7).

Such files are not loadable (Go KES fails with a YAML syntax error). kes-flask says what the
file is and how to convert it instead of printing a confusing YAML error.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

_TABLE_LINE = re.compile(r"^\s*\[\[?[A-Za-z0-9_.\"' -]+\]\]?\s*(#.*)?$", re.MULTILINE)
_ASSIGNMENT_LINE = re.compile(r"^\s*[A-Za-z0-9_.\"'-]+\s*=", re.MULTILINE)


def toml_message(source: str) -> str:
    return (
        f"{source}: this is a TOML config file, the format of KES v0.7 and older; kes-flask "
        f"reads only YAML config files. Convert it with 'kes-flask migrate-config {source} > "
        "config.yml' and review the result."
    )


def parse_toml(text: str) -> dict[str, Any] | None:
    """The parsed TOML document, or None if ``text`` is not TOML."""
    if tomllib is None:
        return None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return None


def looks_like_toml(text: str, source: str) -> bool:
    """True for a non-empty TOML document, a ``.toml`` file name, or (without ``tomllib``)
    text made of ``[table]`` headers and ``key = value`` lines."""
    if source.lower().endswith(".toml"):
        return True
    if tomllib is not None:
        return bool(parse_toml(text))
    return bool(_TABLE_LINE.search(text)) and bool(_ASSIGNMENT_LINE.search(text))


def require_toml(text: str, source: str) -> dict[str, Any]:
    """Parse a legacy TOML config for migration, or explain why that is not possible."""
    if tomllib is None:
        raise ConfigError(
            f"{source}: converting TOML needs Python 3.11 or newer (the tomllib module); "
            "convert the file by hand to YAML, see docs/configuration.md"
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not a valid TOML file: {err}") from None
