"""The times of observations: what a trial, a push or a tell may give as a metric's time."""

from __future__ import annotations

from datetime import UTC, datetime

# The times an observation may have: RFC 3339 can write them (years 1 to 9999, in UTC).
TIME_MIN = datetime(1, 1, 1, tzinfo=UTC).timestamp()
TIME_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def parse_time(text: object) -> float | None:
    """Seconds since the epoch from an RFC3339 string or an epoch number, else None; None
    too for a time RFC 3339 cannot write (NaN, infinite, before the year 1 or after 9999 in
    UTC): stored, it failed every later write of the trial, or every read of its log.

    >>> parse_time("2019-02-03T04:05:06+09:00"), parse_time(1e300), parse_time("nan")
    (1549134306.0, None, None)
    >>> parse_time("0001-01-01T00:00:00+14:00") is None, parse_time(10**400) is None
    (True, True)
    """
    if isinstance(text, bool):
        return None
    try:
        if isinstance(text, int | float):
            value = float(text)  # an int of 400 digits overflows
        elif not isinstance(text, str):
            return None
        else:
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            except (ValueError, OverflowError):
                value = float(text)
    except (ValueError, OverflowError):
        return None
    return value if TIME_MIN <= value <= TIME_MAX else None
