"""Go time.ParseDuration / Duration.String() parity (config.md §2.4)."""

import pytest

from kes_flask.config import format_duration, parse_duration
from kes_flask.config.duration import HOUR, MICROSECOND, MILLISECOND, MINUTE, SECOND

INT64_MAX = (1 << 63) - 1


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("1h30m", HOUR + 30 * MINUTE),
        ("5m0s", 5 * MINUTE),
        ("1.5h", HOUR + 30 * MINUTE),
        (".5s", 500 * MILLISECOND),
        ("5.s", 5 * SECOND),
        ("300ms", 300 * MILLISECOND),
        ("1µs", MICROSECOND),  # U+00B5 micro sign
        ("1μs", MICROSECOND),  # U+03BC Greek mu
        ("1us", MICROSECOND),
        ("7ns", 7),
        ("-1s", -SECOND),
        ("+2m", 2 * MINUTE),
        ("0", 0),
        ("-0", 0),
        ("0s", 0),
        ("1h1h", 2 * HOUR),
        ("0.1ns", 0),
        ("000000000000000000000000001s", SECOND),
        ("9223372036854775807ns", INT64_MAX),
        ("-9223372036854775808ns", -(1 << 63)),
        ("2562047h47m16.854775807s", INT64_MAX),
    ],
)
def test_parse_valid(text, nanoseconds):
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("1w", 'time: unknown unit "w" in duration "1w"'),
        ("", 'time: invalid duration ""'),
        (".", 'time: invalid duration "."'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1", 'time: missing unit in duration "1"'),
        ("15", 'time: missing unit in duration "15"'),
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        (" 1s", 'time: invalid duration " 1s"'),
        ("1S", 'time: unknown unit "S" in duration "1S"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("99999999999999999999999h", 'time: invalid duration "99999999999999999999999h"'),
        ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
    ],
)
def test_parse_invalid(text, message):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (300 * MILLISECOND, "300ms"),
        (SECOND + 500 * MILLISECOND, "1.5s"),
        (5 * MINUTE, "5m0s"),
        (-5 * MINUTE, "-5m0s"),
        (HOUR + 30 * MINUTE, "1h30m0s"),
        (17 * SECOND, "17s"),
        (INT64_MAX, "2562047h47m16.854775807s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
    ],
)
def test_format(nanoseconds, text):
    assert format_duration(nanoseconds) == text


@pytest.mark.parametrize("text", ["5m0s", "1h30m0s", "300ms", "1.5µs", "-5m0s", "17s"])
def test_round_trip(text):
    assert format_duration(parse_duration(text)) == text
