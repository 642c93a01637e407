"""Schedules and times: cron syntax, presets, absolute dates and durations, checked without Airflow."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo

__all__ = [
    "CRON_PRESETS",
    "MAX_DURATION_DAYS",
    "PRESETS",
    "check_cron",
    "check_data_intervals",
    "check_timezone",
    "parse_duration",
    "parse_instant",
]

# Airflow's presets (airflow.utils.dates.cron_presets, applied before croniter) and @once. croniter
# itself also knows @annually and @midnight, in any case, and so does Airflow.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
PRESETS = frozenset({"@once", *CRON_PRESETS})
# Airflow's schedules that are not periods: no data interval timetable exists for them.
WITHOUT_INTERVALS = frozenset({"@once", "@continuous"})
_CRON_EPOCH = datetime(2000, 1, 1)

MAX_DURATION_DAYS = timedelta.max.days
_DURATION = re.compile(r"^(?=[0-9])(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def check_cron(expression: str) -> str | None:
    """Return why ``expression`` is not a schedule Airflow can run (5-field cron or preset), or None.

    Crons are checked by croniter, the library Airflow's cron timetables use, and must fire at least
    once: ``0 0 30 2 *`` parses everywhere but has no next run, which Airflow finds only at run time.
    tests/test_schedule.py runs this and Airflow's own timetable on a corpus of crons.
    """
    if expression == "@once":
        return None
    parts = expression.split()
    if expression.startswith("@"):
        expression = CRON_PRESETS.get(expression, expression)
    elif len(parts) != 5:
        return f"cron expression {expression!r} must have 5 fields (minute hour day month weekday), got {len(parts)}"
    from croniter import croniter  # here, not at the top: only manifests with a schedule pay for it

    try:
        cron = croniter(expression, start_time=_CRON_EPOCH)
    except Exception as exc:  # whatever croniter refuses, Airflow's timetable refuses too
        if expression.startswith("@"):
            return f"unknown preset {expression!r}; use one of {', '.join(sorted(PRESETS))}"
        return f"cron expression {expression!r}: {_which_field(parts, exc)}"
    try:
        cron.get_next(datetime)
    except Exception:
        return f"cron expression {expression!r} never fires: croniter, which Airflow schedules with, finds no date for it (e.g. 30 February)"
    return None


def check_data_intervals(expression: str) -> str | None:
    """Why ``expression`` cannot have Airflow 2's data intervals (``data_intervals: true``), or None."""
    if expression in WITHOUT_INTERVALS:
        return (
            f"{expression} has no data intervals (it is not a repeating period): remove data_intervals, "
            "or give a cron or preset such as @daily"
        )
    return None


_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _which_field(parts: list[str], error: Exception) -> str:
    """Name the field croniter refused (its messages quote the whole expression only)."""
    from croniter import croniter

    for i, name in enumerate(_FIELD_NAMES):
        alone = " ".join(part if j == i else "*" for j, part in enumerate(parts))
        try:
            croniter(alone)
        except Exception as exc:
            reason = str(exc).rpartition("] ")[2].removeprefix("is not acceptable, ") or type(exc).__name__
            return f"{name} field {parts[i]!r} is not valid ({reason})"
    return f"is not valid ({str(error).rpartition('] ')[2] or type(error).__name__})"


def parse_instant(text: str, zone: tzinfo | None = None) -> datetime:
    """Parse ``YYYY-MM-DD`` (midnight in ``zone``, default UTC) or an RFC 3339 date-time with offset
    (the same instant, shown in ``zone``). Raises ValueError."""
    zone = zone or timezone.utc
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=zone)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a date-time needs an offset such as Z or +02:00")
    try:
        return value.astimezone(zone)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError("in UTC it falls outside the years 1-9999") from None


def check_timezone(name: str) -> tzinfo | str:
    """The IANA zone ``name`` names, or why it cannot be used."""
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if not zoneinfo.available_timezones():
            return "no time zone database on this machine (install the tzdata package) to check it"
        return f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or America/New_York"


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
