"""The rhythm fields the subscribe and preferences pages share: cadence, weekday, hour and time
zone, as typed, then checked by the intake layer every door uses.

The weekday is a field of its own, always there (the page works without script), and counts
for weekly readers only. The time-zone field is filled in with the browser's zone by
`static/timezone.js` when it is empty; without script it stays empty: the list's zone.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from newsletter.config import Settings
from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import (
    normalise_cadence,
    normalise_day,
    normalise_hour,
    normalise_zone,
)
from newsletter.models import Cadence
from newsletter.schedules import DAY_NAMES, WEEKDAYS, Schedule

CADENCES = {
    Cadence.daily.value: "Daily: each new digest (arXiv announces five days a week)",
    Cadence.weekly.value: "Weekly: everything new since the last one, on one day of the week",
}
DAYS = dict(zip(WEEKDAYS, DAY_NAMES, strict=True))
HOURS = {"": "As soon as it is ready", **{str(hour): f"{hour:02d}:00" for hour in range(24)}}


@dataclass
class RhythmForm:
    """The four fields as the page shows them (and as typed, when it comes back with an error)."""

    cadence: str = Cadence.daily.value
    day: str = WEEKDAYS[0]
    hour: str = ""
    timezone: str = ""

    @classmethod
    def posted(cls) -> RhythmForm | None:
        """What was posted; None when the form had no rhythm fields (theirs then stays)."""
        if "cadence" not in request.form:
            return None
        return cls(
            cadence=request.form.get("cadence", ""),
            day=request.form.get("day", ""),
            hour=request.form.get("hour", ""),
            timezone=request.form.get("timezone", "").strip(),
        )

    @classmethod
    def of(cls, schedule: Schedule) -> RhythmForm:
        return cls(
            cadence=str(schedule.cadence),
            day=WEEKDAYS[schedule.day or 0],
            hour="" if schedule.hour is None else str(schedule.hour),
            timezone=schedule.zone or "",
        )

    def checked(self, errors: dict[str, str]) -> Schedule | None:
        """The rhythm asked for; None, with what is wrong in `errors` by field, otherwise."""
        found: dict[str, object] = {}
        wrong: dict[str, str] = {}
        for name, read, text in (
            ("cadence", normalise_cadence, "Choose daily or weekly."),
            ("day", normalise_day, "Choose a day of the week from the list."),
            ("hour", normalise_hour, "Choose an hour from the list."),
            ("timezone", normalise_zone, None),  # the intake's words name what was typed
        ):
            try:
                found[name] = read(getattr(self, name))
            except InvalidInput as error:
                wrong[name] = text or f"{error}. Leave it empty for the list's time zone."
        if wrong:
            errors.update(wrong)
            return None
        weekly = found["cadence"] == Cadence.weekly
        day = found["day"] if weekly else None  # the weekday counts for weekly readers only
        return Schedule(found["cadence"], found["hour"], day, found["timezone"])


def rhythm_choices(settings: Settings) -> dict[str, object]:
    """What the fields offer, and the list's own zone and time they fall back to."""
    return {
        "cadences": CADENCES,
        "days": DAYS,
        "hours": HOURS,
        "list_zone": settings.timezone,
        "daily_time": settings.daily_time,
    }
