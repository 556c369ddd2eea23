"""When a reader is next due: their cadence, hour, weekday and time zone, as a UTC instant.

Pure time arithmetic (no database, no settings): `next_send` is the one place that turns a
reader's "weekly on Monday at 7 in Asia/Shanghai" into the next moment to serve them.

Daylight saving: a local hour is looked up once per local date, so each chosen day has exactly
one instant. An hour that does not exist that day (clocks jump from 02:00 to 03:00) is taken
at the wall time it would have been before the jump (02:30 becomes 03:30); an hour that happens
twice (clocks go back) is taken the first time. The caller moves a reader's `next_send_at` past
the instant it served, so the second 01:30 of a night is never a second digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.config.settings import WEEKDAYS  # NEWSLETTER_SEND_DAYS' names, Monday first

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Schedule:
    """One reader's rhythm."""

    cadence: str = "daily"
    """"daily" (every day a new digest is ready) or "weekly" (on `day`)."""
    hour: int | None = None
    """The local hour (0-23); None: daily readers get each digest as soon as it is built,
    weekly readers at `default_time`."""
    day: int | None = None
    """Weekly readers' weekday, Monday = 0 (None: Monday)."""
    zone: str | None = None
    """An IANA time zone; None: `default_zone`."""

    def describe(self, default_zone: str) -> str:
        """ "weekly on Mon at 07:00 Asia/Shanghai", "daily when built"."""
        zone = self.zone or default_zone
        when = "when built" if self.hour is None else f"at {self.hour:02d}:00 {zone}"
        if self.cadence == "weekly":
            day = DAY_NAMES[self.day or 0]
            when = f"at the daily time ({default_zone})" if self.hour is None else when
            return f"weekly on {day} {when}"
        return f"daily {when}"


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone of that name; ValueError naming it when there is none."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")):
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{name!r} is not an IANA time zone (like Europe/Berlin or Asia/Kolkata)"
        ) from None


def weekday_named(name: str) -> int:
    """Monday = 0 from "mon", "Monday", "MON"…; ValueError naming it otherwise."""
    key = name.strip().lower()
    for number, (short, full) in enumerate(zip(WEEKDAYS, DAY_NAMES, strict=True)):
        if key in (short, full.lower()):
            return number
    raise ValueError(f"{name!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")


def next_send(
    schedule: Schedule, after: datetime, *, default_zone: str, default_time: time
) -> datetime | None:
    """The first instant strictly after `after` (aware) at which the reader is due, in UTC;
    None for a daily reader without an hour (due whenever a new digest is ready)."""
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime")
    if schedule.hour is None and schedule.cadence != "weekly":
        return None
    zone = zone_named(schedule.zone or default_zone)
    if schedule.hour is None:  # a weekly reader without an hour: the daily job's time
        at = default_time
        zone = zone_named(default_zone)
    else:
        at = time(schedule.hour)
    first = after.astimezone(zone).date() - timedelta(days=1)  # the zone's date may lag
    for offset in range(9):
        day = first + timedelta(days=offset)
        if schedule.cadence == "weekly" and day.weekday() != (schedule.day or 0):
            continue
        instant = _instant(day, at, zone)
        if instant > after:
            return instant
    raise AssertionError("no day in nine matched")  # a week always has the day


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local `at` on `day`: fold=0 takes an hour that happens twice the
    first time, and an hour that does not exist at the offset it would have had before."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def daily_time(value: str) -> time:
    """NEWSLETTER_DAILY_TIME ("06:00") as a time."""
    return time.fromisoformat(value)
