"""A reader's rhythm as typed or imported, checked: cadence, hour, weekday and time zone; and
the clock that turns a rhythm into the instant the reader is next due.

Every door (the command line, the CSV import, the subscribe and preferences pages) checks
with these functions, so they accept and refuse the same things. A weekday goes with a
weekly cadence only: named with a daily one, it is an error (on the command line and in the
CSV; the web form has a weekday field always, and uses it for weekly readers only).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING

from newsletter.errors import InvalidInput, about
from newsletter.models import Cadence, utcnow
from newsletter.schedules import Schedule, daily_time, next_send, weekday_named, zone_named

if TYPE_CHECKING:
    from newsletter.config import Settings

MAX_ZONE = 64
"""What the time zone's column holds."""
CLEARED = "none"
"""What clears an hour (back to "as soon as the digest is built") or a time zone (back to the
list's), wherever one is typed."""
HOUR = re.compile(r"([0-9]{1,2})(?::00)?")


class Keep(enum.Enum):
    """A field not given: a reader on the list keeps theirs, a new one gets the default."""

    KEEP = "keep"


KEEP = Keep.KEEP


def normalise_cadence(value: str) -> Cadence:
    """`daily` or `weekly`; raises otherwise."""
    try:
        return Cadence(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"{value!r} is not a cadence (use daily or weekly)") from None


def normalise_hour(value: str) -> int | None:
    """A whole local hour, 0 to 23 (`7`, `07`, `7:00`); None for `none` or nothing (as soon as
    the digest is built); raises otherwise."""
    text = value.strip()
    if text.lower() in ("", CLEARED):
        return None
    found = HOUR.fullmatch(text)
    if found is None or int(found.group(1)) > 23:
        raise InvalidInput(
            f"{value!r} is not an hour: use a whole hour from 0 to 23 (7, 07 or 7:00),"
            f" or {CLEARED} for as soon as the digest is built"
        )
    return int(found.group(1))


def normalise_day(value: str) -> int:
    """A weekday, Monday = 0, from `mon` or `Monday` (any case); raises otherwise."""
    try:
        return weekday_named(value)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def normalise_zone(value: str) -> str | None:
    """An IANA time zone's name (`Asia/Shanghai`); None for `none` or nothing (the list's
    zone); raises naming the value otherwise."""
    text = value.strip()
    if text.lower() in ("", CLEARED):
        return None
    try:
        name = zone_named(text).key
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    if len(name) > MAX_ZONE:
        raise InvalidInput(f"{value!r} is a time zone name too long to store (over {MAX_ZONE})")
    return name


@dataclass(frozen=True)
class ScheduleChange:
    """What was asked of a reader's rhythm; a field left `KEEP` stays as it is."""

    cadence: Cadence | Keep = KEEP
    hour: int | None | Keep = KEEP
    day: int | None | Keep = KEEP
    zone: str | None | Keep = KEEP

    def applied_to(self, schedule: Schedule) -> Schedule:
        """`schedule` with what was asked; a daily one never keeps a weekday. Raises when a
        weekday is asked of a reader who stays (or becomes) daily."""
        given = {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if getattr(self, field.name) is not KEEP
        }
        changed = replace(schedule, **given)
        if changed.cadence == Cadence.weekly:
            return changed
        if self.day not in (KEEP, None):
            raise InvalidInput(
                "a weekday goes with a weekly cadence only (this reader's is daily):"
                " ask for the weekly cadence too"
            )
        return replace(changed, day=None)


def schedule_change(
    cadence: str | None = None,
    day: str | None = None,
    hour: str | int | None = None,
    zone: str | None = None,
) -> ScheduleChange:
    """The rhythm as typed (an option, a field), checked: None keeps what the reader has (to
    clear an hour or a zone, give "none")."""
    with about("cadence"):
        cadence_asked = KEEP if cadence is None else normalise_cadence(cadence)
    with about("hour"):
        hour_asked = KEEP if hour is None else normalise_hour(str(hour))
    with about("day"):
        day_asked = KEEP if day is None else normalise_day(day)
    with about("timezone"):
        zone_asked = KEEP if zone is None else normalise_zone(zone)
    return ScheduleChange(cadence=cadence_asked, hour=hour_asked, day=day_asked, zone=zone_asked)


@dataclass(frozen=True)
class SendClock:
    """The list's time zone and daily time, which stand in for a reader's unset zone and (for
    weekly readers) hour: when a rhythm makes a reader next due, and the rhythm in words."""

    zone: str
    daily_time: str
    """NEWSLETTER_DAILY_TIME, as written ("06:00")."""

    @classmethod
    def of(cls, settings: Settings) -> SendClock:
        return cls(settings.timezone, settings.daily_time)

    def next_send_at(self, schedule: Schedule, now: datetime | None = None) -> datetime | None:
        """The first instant after `now` (default: this moment) the reader is due, in UTC;
        None for a daily reader without an hour (due whenever a new digest is ready)."""
        return next_send(
            schedule,
            now or utcnow(),
            default_zone=self.zone,
            default_time=daily_time(self.daily_time),
        )

    def describe(self, schedule: Schedule) -> str:
        """ "weekly on Monday at 07:00 Asia/Shanghai", "daily when built"."""
        return schedule.describe(self.zone)
