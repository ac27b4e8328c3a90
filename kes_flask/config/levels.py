"""``log.error`` / ``log.audit`` level syntax (config.md §4.5), with Go KES's exact error texts.

Levels use Go's ``log/slog`` numbering so that ``INFO+2`` and plain integers mean the same as
upstream. A bare non-numeric word yields Go's ``strconv.Atoi`` error, without the ``kesconf:``
prefix, because that is what operators see from Go KES.
"""

from __future__ import annotations

from .errors import ConfigError
from .model import LEVEL_DEBUG, LEVEL_ERROR, LEVEL_INFO, LEVEL_OFF, LEVEL_WARN

_NAMED_LEVELS = (  # checked in this order, by prefix
    ("DEBUG", LEVEL_DEBUG),
    ("INFO", LEVEL_INFO),
    ("WARN", LEVEL_WARN),
    ("ERROR", LEVEL_ERROR),
)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def go_quote(text: str) -> str:
    """Double-quote ``text`` the way Go's ``%q`` / ``strconv.Quote`` does for common input."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def go_atoi(text: str) -> int:
    """``strconv.Atoi``: optional sign and ASCII digits only; raise ConfigError with Go's text."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or any(c not in "0123456789" for c in digits):
        raise ConfigError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


def parse_log_level(text: str) -> int:
    """Return the slog level for ``text``; raise ConfigError with the upstream message."""
    value = text.upper().strip()
    if value in ("", "ON"):
        return LEVEL_INFO
    if value == "OFF":
        return LEVEL_OFF
    for name, base in _NAMED_LEVELS:
        if not value.startswith(name):
            continue
        if value == name:
            return base
        head, plus, suffix = value.partition("+")
        if not plus or head.strip() != name:
            raise ConfigError(f"kesconf: invalid log level '{value}'")
        try:
            offset = go_atoi(suffix)
        except ConfigError as err:
            raise ConfigError(f"kesconf: invalid log level suffix '{suffix}': {err}") from None
        return base + offset
    return go_atoi(value)
