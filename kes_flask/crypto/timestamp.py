"""UTC instants with nanosecond precision, parsed and printed exactly like Go's ``time`` package.

Key creation times travel between Go KES and this server (stored keys, API responses), so they
keep Go's full range and precision instead of Python's ``datetime`` (microseconds, years 1-9999).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

_NANOS_PER_SECOND = 1_000_000_000
_SECONDS_PER_DAY = 86_400
_DAYS_PER_400_YEARS = 146_097
_EPOCH_DAY_OFFSET = 719_468  # days from 0000-03-01 to 1970-01-01

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


@dataclass(frozen=True, order=True)
class Timestamp:
    """A point in time as seconds since the Unix epoch plus nanoseconds (like protobuf's)."""

    seconds: int
    nanos: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.nanos < _NANOS_PER_SECOND:
            raise ValueError(f"nanos out of range: {self.nanos}")

    @classmethod
    def now(cls) -> Timestamp:
        return cls.from_unix_nanos(time.time_ns())

    @classmethod
    def from_unix_nanos(cls, nanos: int) -> Timestamp:
        seconds, rest = divmod(nanos, _NANOS_PER_SECOND)
        return cls(seconds, rest)

    @classmethod
    def parse_rfc3339(cls, text: str) -> Timestamp:
        """Parse like Go's ``time.Parse(time.RFC3339, text)`` and ``Time.UnmarshalJSON``.

        Go is laxer than RFC 3339 (its strict checks are disabled): the hour may have one
        digit, the fraction separator may be ``,``, any number of fractional digits is
        truncated to nanoseconds, and an offset ``±hh:mm`` may go up to ``24:60``.
        """
        match = _RFC3339.fullmatch(text)
        if match is None:
            raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
        year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
        if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
            raise ValueError(f"date out of range: {text!r}")
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"time out of range: {text!r}")
        offset = 0
        if match.group(8):
            offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
            if offset_hours > 24 or offset_minutes > 60:
                raise ValueError(f"time zone offset out of range: {text!r}")
            offset = (offset_hours * 60 + offset_minutes) * 60
            if match.group(8) == "-":
                offset = -offset
        fraction = match.group(7) or ""
        nanos = int(fraction[:9].ljust(9, "0"))
        days = _days_from_civil(year, month, day)
        seconds = days * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset
        return cls(seconds, nanos)

    def rfc3339(self) -> str:
        """Format like Go's ``time.RFC3339Nano`` in UTC: trailing fractional zeros trimmed."""
        days, second_of_day = divmod(self.seconds, _SECONDS_PER_DAY)
        year, month, day = _civil_from_days(days)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        sign = "-" if year < 0 else ""
        text = f"{sign}{abs(year):04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        if self.nanos:
            text += "." + f"{self.nanos:09d}".rstrip("0")
        return text + "Z"

    def __str__(self) -> str:
        return self.rfc3339()


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    if month <= 2:
        year -= 1
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * _DAYS_PER_400_YEARS + day_of_era - _EPOCH_DAY_OFFSET


def _civil_from_days(days: int) -> tuple[int, int, int]:
    era, day_of_era = divmod(days + _EPOCH_DAY_OFFSET, _DAYS_PER_400_YEARS)
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


ZERO_TIME = Timestamp(-62_135_596_800)
"""Go's zero ``time.Time``, 0001-01-01T00:00:00Z: the creation time of legacy keys without one."""

UNIX_EPOCH = Timestamp(0)
