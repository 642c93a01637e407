"""Schedules and times: cron syntax, presets, absolute dates and durations, checked without Airflow."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = ["MAX_DURATION_DAYS", "PRESETS", "check_cron", "parse_duration", "parse_instant"]

PRESETS = frozenset(
    {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
)

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, low, high, names)
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|(?P<a>[0-9a-z]+)(-(?P<b>[0-9a-z]+))?)(/(?P<step>[0-9]+))?$")
MAX_DURATION_DAYS = timedelta.max.days
_DURATION = re.compile(r"^(?=[0-9])(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def _value(token: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    if token.isdigit():
        value = int(token)
    elif token in names:
        value = names[token]
    else:
        raise ValueError(f"{field} {token!r} is not a number" + (" or a name" if names else ""))
    if not low <= value <= high:
        raise ValueError(f"{field} {value} is out of range {low}-{high}")
    return value


def check_cron(expression: str) -> str | None:
    """Return why ``expression`` is not a valid schedule string (5-field cron or preset), or None."""
    text = expression.strip().lower()
    if text.startswith("@"):
        if text in PRESETS:
            return None
        return f"unknown preset {expression!r}; use one of {', '.join(sorted(PRESETS))}"
    parts = text.split()
    if len(parts) != 5:
        return f"cron expression {expression!r} must have 5 fields (minute hour day month weekday), got {len(parts)}"
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            match = _ITEM.match(item)
            if not match:
                return f"cron expression {expression!r}: {field} field {item!r} is not valid"
            try:
                if match["a"] is not None:
                    a = _value(match["a"], field, low, high, names)
                    if match["b"] is not None and _value(match["b"], field, low, high, names) < a:
                        return f"cron expression {expression!r}: {field} range {item!r} is reversed"
                if match["step"] is not None and not 1 <= int(match["step"]) <= high:
                    return f"cron expression {expression!r}: {field} step in {item!r} must be 1-{high}"
            except ValueError as exc:
                return f"cron expression {expression!r}: {exc}"
    return None


def parse_instant(text: str) -> datetime:
    """Parse ``YYYY-MM-DD`` (midnight timezone.utc) or an RFC 3339 date-time with offset. Raises ValueError."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=timezone.utc)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a date-time needs an offset such as Z or +02:00")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("in UTC it falls outside the years 1-9999") from None


def parse_duration(text: str) -> timedelta:
    """Parse ``1d2h30m15s``-style durations. Raises ValueError, also when too long for a timedelta."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"duration {text!r} is not like 45s, 30m, 2h, 1h30m or 1d")
    try:
        d, h, m, s = (int(g or 0) for g in match.groups())
        return timedelta(days=d, hours=h, minutes=m, seconds=s)
    except (OverflowError, ValueError):  # more than 999999999 days, or more digits than int() reads
        shown = text if len(text) <= 40 else text[:20] + "..." + text[-10:]
        raise ValueError(f"duration {shown!r} is too long (at most {MAX_DURATION_DAYS} days)") from None
