"""Go ``time.Duration`` text form, so config files and messages read exactly as in Go KES.

Durations are integer nanoseconds. ``parse_duration`` accepts precisely what Go's
``time.ParseDuration`` accepts (config.md §2.4: no ``d``/``w`` units, no spaces, ``0`` is the
only unit-less value); ``format_duration`` reproduces ``Duration.String()`` (``5m0s``, ``1.5µs``).
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1_000 * NANOSECOND
MILLISECOND = 1_000 * MICROSECOND
SECOND = 1_000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_LIMIT = 1 << 63  # |duration| must stay within int64 (the negative side may reach 2^63)
_DIGITS = "0123456789"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _leading_digits(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    return pos


def _fraction(digits: str) -> tuple[int, float]:
    """Value and scale of fraction digits; stops gaining precision instead of overflowing."""
    value, scale = 0, 1.0
    for char in digits:
        candidate = value * 10 + int(char)
        if value > (_LIMIT - 1) // 10 or candidate > _LIMIT:
            break
        value, scale = candidate, scale * 10
    return value, scale


def parse_duration(text: str) -> int:
    """Parse ``text`` like Go's ``time.ParseDuration``; return nanoseconds or raise ValueError."""
    invalid = ValueError(f"time: invalid duration {_quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    pos = 0
    while pos < len(rest):
        if rest[pos] != "." and rest[pos] not in _DIGITS:
            raise invalid
        int_end = _leading_digits(rest, pos)
        significant = rest[pos:int_end].lstrip("0")
        if len(significant) > 20:  # more digits than any int64 has
            raise invalid
        whole = int(significant) if significant else 0
        if whole > _LIMIT:
            raise invalid
        frac_value, frac_scale, frac_end, has_fraction = 0, 1.0, int_end, False
        if int_end < len(rest) and rest[int_end] == ".":
            frac_end = _leading_digits(rest, int_end + 1)
            has_fraction = frac_end > int_end + 1
            frac_value, frac_scale = _fraction(rest[int_end + 1 : frac_end])
        if int_end == pos and not has_fraction:
            raise invalid  # no digits at all, e.g. "." or ".s"
        unit_end = frac_end
        while unit_end < len(rest) and rest[unit_end] != "." and rest[unit_end] not in _DIGITS:
            unit_end += 1
        unit = rest[frac_end:unit_end]
        if not unit:
            raise ValueError(f"time: missing unit in duration {_quote(text)}")
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {_quote(unit)} in duration {_quote(text)}")
        scale = _UNITS[unit]
        if whole > _LIMIT // scale:
            raise invalid
        value = whole * scale
        if frac_value > 0:
            # Go computes the fractional part in float64; int() truncates like uint64().
            value += int(float(frac_value) * (float(scale) / frac_scale))
            if value > _LIMIT:
                raise invalid
        total += value
        if total > _LIMIT:
            raise invalid
        pos = unit_end
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise invalid
    return total


def _fraction_text(value: int, precision: int) -> tuple[str, int]:
    """Digits after the point of value/10**precision without trailing zeros, and the quotient."""
    digits = ""
    significant = False
    for _ in range(precision):
        digit = value % 10
        significant = significant or digit != 0
        if significant:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if digits else ""), value


def format_duration(ns: int) -> str:
    """Format nanoseconds like Go's ``time.Duration.String()``."""
    sign = "-" if ns < 0 else ""
    magnitude = abs(ns)
    if magnitude == 0:
        return "0s"
    if magnitude < SECOND:
        if magnitude < MICROSECOND:
            return f"{sign}{magnitude}ns"
        if magnitude < MILLISECOND:
            frac, whole = _fraction_text(magnitude, 3)
            return f"{sign}{whole}{frac}\u00b5s"
        frac, whole = _fraction_text(magnitude, 6)
        return f"{sign}{whole}{frac}ms"
    frac, seconds = _fraction_text(magnitude, 9)
    text = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text
