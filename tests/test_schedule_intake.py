"""Each reader's rhythm coming in: the CLI, the CSV, the subscribe and preferences pages; and
when that makes them next due (`next_send_at`), recomputed by every door alike."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import (
    KEEP,
    ScheduleChange,
    normalise_cadence,
    normalise_day,
    normalise_hour,
    normalise_zone,
)
from newsletter.intake.subscribers import read_subscriber_csv
from newsletter.models import Cadence
from newsletter.schedules import Schedule
from newsletter.web import create_app
from tests.helpers import subscribe
from tests.web_helpers import confirm_path, local_smtp, submit, subscribe_form, token_path

ADA = "ada@example.org"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def reader(settings, email: str = ADA) -> dict:
    """What the database holds of a reader's rhythm."""
    with session_scope(settings) as session:
        found = store.get_subscriber(session, email)
        return {
            "cadence": found.cadence,
            "hour": found.send_hour,
            "day": found.send_day,
            "zone": found.timezone,
            "next": found.next_send_at,
            "through": found.delivered_through,
        }


def next_monday_seven_in_shanghai(after: datetime) -> datetime:
    local = after.astimezone(SHANGHAI)
    day = local.date() + timedelta(days=(0 - local.weekday()) % 7)
    due = datetime.combine(day, time(7), tzinfo=SHANGHAI)
    if due <= after:
        due += timedelta(days=7)
    return due.astimezone(UTC)


def weekly_on_monday_at_seven_in_shanghai(settings, before: datetime, after: datetime) -> dict:
    """Ada's rhythm as stored, checked: due the next Monday 07:00 in Shanghai after the moment
    her rhythm was set, somewhere between `before` and `after` (utcnow is not injectable)."""
    now = reader(settings)
    assert (now["cadence"], now["hour"], now["day"], now["zone"]) == (
        "weekly", 7, 0, "Asia/Shanghai"
    )  # fmt: skip
    assert now["next"] in {
        next_monday_seven_in_shanghai(before),
        next_monday_seven_in_shanghai(after),
    }
    return now


# ---------------------------------------------------------------- intake


def test_hours_days_cadences_and_zones_are_checked():
    assert [normalise_hour(text) for text in ("7", "07", "7:00", " 23 ", "0")] == [7, 7, 7, 23, 0]
    assert normalise_hour("none") is None and normalise_hour("") is None
    for bad in ("24", "-1", "7:30", "seven", "7.0", "٧"):
        with pytest.raises(InvalidInput, match=f"{bad!r} is not an hour"):
            normalise_hour(bad)
    assert normalise_day("Mon") == 0 and normalise_day("sunday") == 6
    with pytest.raises(InvalidInput, match="'someday' is not a weekday"):
        normalise_day("someday")
    assert normalise_cadence(" Weekly ") is Cadence.weekly
    with pytest.raises(InvalidInput, match="'monthly' is not a cadence"):
        normalise_cadence("monthly")
    assert normalise_zone("Asia/Shanghai") == "Asia/Shanghai" and normalise_zone("none") is None
    for bad in ("Mars/Olympus", "../etc/passwd", "Asia/Shanghai\x00"):
        with pytest.raises(InvalidInput, match="is not an IANA time zone"):
            normalise_zone(bad)


def test_a_weekday_goes_with_a_weekly_cadence_only():
    weekly = Schedule("weekly", 7, 2, "Asia/Shanghai")
    assert ScheduleChange(hour=9).applied_to(weekly) == Schedule("weekly", 9, 2, "Asia/Shanghai")
    # Becoming daily drops the weekday; asking for one with a daily cadence is an error.
    assert ScheduleChange(cadence=Cadence.daily).applied_to(weekly).day is None
    with pytest.raises(InvalidInput, match="weekday goes with a weekly cadence"):
        ScheduleChange(cadence=Cadence.daily, day=1).applied_to(weekly)
    with pytest.raises(InvalidInput, match="weekday goes with a weekly cadence"):
        ScheduleChange(day=1).applied_to(Schedule())
    assert ScheduleChange().applied_to(weekly) == weekly


def test_csv_rhythm_values_are_read_and_a_bad_one_is_reported_with_the_rest_kept():
    rows, rejected = read_subscriber_csv(
        "email,topics,cadence,day,hour,timezone\n"
        "ada@example.org,SLAM,weekly,mon,7,Asia/Shanghai\n"
        "bo@example.org,SLAM,weekly,someday,25,Mars/Olympus\n"
        "cy@example.org,SLAM,daily,tue,,\n"
        "dee@example.org,SLAM,,,none,none\n",
        default_language="en",
    )
    specs = {spec.email: spec.schedule for _line, spec in rows}
    assert specs["ada@example.org"] == ScheduleChange(Cadence.weekly, 7, 0, "Asia/Shanghai")
    assert specs["bo@example.org"] == ScheduleChange(cadence=Cadence.weekly)
    assert specs["cy@example.org"] == ScheduleChange(cadence=Cadence.daily)
    assert specs["dee@example.org"] == ScheduleChange(hour=None, zone=None)
    assert specs["dee@example.org"].cadence is KEEP
    reasons = [(row.line, row.reason.split(":")[0]) for row in rejected]
    assert reasons == [(3, "day"), (3, "hour"), (3, "timezone"), (4, "day")]
    assert "'Mars/Olympus' is not an IANA time zone" in rejected[2].reason


# ---------------------------------------------------------------- the command line


def test_add_weekly_in_shanghai_is_due_next_monday_at_seven_there(cli, settings, example_topics):
    before = datetime.now(UTC)
    added = cli(
        "subscribers", "add", ADA, "-t", "SLAM",
        "--cadence", "weekly", "--day", "mon", "--hour", "7", "--tz", "Asia/Shanghai",
    )  # fmt: skip
    after = datetime.now(UTC)
    now = weekly_on_monday_at_seven_in_shanghai(settings, before, after)
    local = now["next"].astimezone(SHANGHAI)
    assert (local.weekday(), local.hour, local.minute) == (0, 7, 0)
    assert before < now["next"] <= after + timedelta(days=7)
    assert "weekly on Monday at 07:00 Asia/Shanghai" in added.output
    assert f"next {local.isoformat(timespec='minutes')}" in added.output

    shown = cli("subscribers", "show", ADA).output
    assert "rhythm: weekly on Monday at 07:00 Asia/Shanghai" in shown
    assert f"next_send_at: {local.isoformat(timespec='minutes')}" in shown  # their zone: +08:00
    assert "+08:00" in shown
    listed = cli("subscribers", "list", "--json").output
    assert '"rhythm": "weekly on Monday at 07:00 Asia/Shanghai"' in listed
    table = cli("subscribers", "list").output
    assert "Rhythm" in table and "weekly" in table


def test_a_default_reader_is_due_whenever_a_digest_is_built(cli, settings, example_topics):
    subscribe(cli, ADA, "SLAM")
    now = reader(settings)
    assert (now["cadence"], now["hour"], now["day"], now["zone"], now["next"]) == (
        "daily", None, None, None, None
    )  # fmt: skip
    assert "next_send_at: as soon as a digest is built" in cli("subscribers", "show", ADA).output


def test_edit_each_option_recomputes_next_send_at_and_keeps_delivered_through(
    cli, settings, example_topics
):
    subscribe(cli, ADA, "SLAM")
    through = datetime(2026, 11, 30, 6, tzinfo=UTC)
    with session_scope(settings) as session:
        store.get_subscriber(session, ADA).delivered_through = through

    cli("subscribers", "edit", ADA, "--hour", "07:00")
    now = reader(settings)
    assert (now["cadence"], now["hour"]) == ("daily", 7)
    assert now["next"].astimezone(UTC).hour == 7  # the list's zone: UTC
    assert now["through"] == through

    cli("subscribers", "edit", ADA, "--tz", "Asia/Kolkata")
    now = reader(settings)
    local = now["next"].astimezone(ZoneInfo("Asia/Kolkata"))
    assert (now["zone"], local.hour, local.minute) == ("Asia/Kolkata", 7, 0)

    cli("subscribers", "edit", ADA, "--cadence", "weekly", "--day", "Friday")
    now = reader(settings)
    assert (now["cadence"], now["day"]) == ("weekly", 4)
    assert now["next"].astimezone(ZoneInfo("Asia/Kolkata")).weekday() == 4
    assert now["through"] == through  # a cadence change loses and repeats nothing

    cli("subscribers", "edit", ADA, "--cadence", "daily", "--hour", "none", "--tz", "none")
    now = reader(settings)
    assert (now["cadence"], now["hour"], now["day"], now["zone"], now["next"]) == (
        "daily", None, None, None, None
    )  # fmt: skip
    assert now["through"] == through
    history = cli("subscribers", "show", ADA).output
    assert "weekly on Friday at 07:00 Asia/Kolkata" in history  # each change is logged


def test_an_edit_that_changes_no_rhythm_keeps_when_they_are_due(cli, settings, example_topics):
    subscribe(cli, ADA, "SLAM")
    cli("subscribers", "edit", ADA, "--hour", "7")
    due = datetime(2030, 1, 1, 7, tzinfo=UTC)  # as if the sender had moved it on
    with session_scope(settings) as session:
        store.get_subscriber(session, ADA).next_send_at = due
    cli("subscribers", "edit", ADA, "--hour", "7", "--lang", "de")
    assert reader(settings)["next"] == due


@pytest.mark.parametrize(
    "options, shown",
    [
        (["--hour", "7:30"], "'7:30' is not an hour"),
        (["--hour", "24"], "'24' is not an hour"),
        (["--day", "someday", "--cadence", "weekly"], "'someday' is not a weekday"),
        (["--cadence", "monthly"], "'monthly' is not a cadence (use daily or weekly)"),
        (["--tz", "Mars/Olympus"], "'Mars/Olympus' is not an IANA time zone"),
        (["--day", "mon"], "a weekday goes with a weekly cadence only"),
        (["--cadence", "daily", "--day", "mon"], "a weekday goes with a weekly cadence only"),
    ],
)
def test_bad_rhythm_options_are_clear_errors_and_change_nothing(
    cli, settings, example_topics, options, shown
):
    refused = cli("subscribers", "add", ADA, "-t", "SLAM", *options, ok=False)
    assert refused.exit_code == 1 and shown in refused.output and "Traceback" not in refused.output
    assert store_is_empty(settings)
    subscribe(cli, ADA, "SLAM")
    before = reader(settings)
    refused = cli("subscribers", "edit", ADA, "--lang", "de", *options, ok=False)
    assert refused.exit_code == 1 and shown in refused.output
    assert reader(settings) == before


def store_is_empty(settings) -> bool:
    with session_scope(settings) as session:
        return store.list_subscribers(session) == []


def test_csv_import_with_good_and_bad_rhythms_and_export_round_trip(
    cli, settings, example_topics, tmp_path
):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,topics,cadence,day,hour,timezone\n"
        "ada@example.org,Ada,SLAM,weekly,mon,7,Asia/Shanghai\n"
        "bo@example.org,Bo,SLAM,weekly,wed,25,Mars/Olympus\n"
        "cy@example.org,Cy,SLAM,,,6,\n"
    )
    result = cli("subscribers", "import", str(path), ok=False)
    assert "people.csv:3: rejected: hour: not changed, the rest of the row is kept" in result.output
    assert "people.csv:3: rejected: timezone: not changed" in result.output
    assert "3 added; 2 rejected" in result.output
    ada, bo, cy = (reader(settings, f"{name}@example.org") for name in ("ada", "bo", "cy"))
    assert ada["next"].astimezone(SHANGHAI).strftime("%a %H:%M") == "Mon 07:00"
    assert (bo["cadence"], bo["day"], bo["hour"], bo["zone"]) == ("weekly", 2, None, None)
    assert bo["next"].strftime("%a %H:%M") == "Wed 06:00"  # the list's daily time, in UTC
    assert (cy["cadence"], cy["hour"]) == ("daily", 6) and cy["next"].hour == 6

    exported = cli("subscribers", "export").output.splitlines()
    assert "ada@example.org,Ada,SLAM,en,html,,weekly,mon,7,Asia/Shanghai,active" in exported
    assert "cy@example.org,Cy,SLAM,en,html,,daily,,6,,active" in exported

    # --update: a new rhythm recomputes when they are due; an empty cell keeps theirs.
    path.write_text(
        "email,name,topics,cadence,day,hour,timezone\n"
        "ada@example.org,Ada,SLAM,daily,,,\n"
        "cy@example.org,Cy,SLAM,,,,\n"
    )
    result = cli("subscribers", "import", str(path), "--update")
    assert "1 unchanged, 1 updated" in result.output
    ada = reader(settings)
    assert (ada["cadence"], ada["day"], ada["hour"], ada["zone"]) == (
        "daily", None, 7, "Asia/Shanghai"
    )  # fmt: skip
    assert ada["next"].astimezone(SHANGHAI).hour == 7
    assert reader(settings, "cy@example.org")["hour"] == 6


# ---------------------------------------------------------------- the web


@pytest.fixture
def smtp(settings, monkeypatch):
    with local_smtp(monkeypatch) as server:
        yield server


@pytest.fixture
def client(smtp, cli, example_topics):
    from newsletter.config import get_settings

    return create_app(get_settings()).test_client()


RHYTHM = {"cadence": "weekly", "day": "mon", "hour": "7", "timezone": "Asia/Shanghai"}


def test_a_web_subscription_carries_its_rhythm_to_confirmation(settings, client, smtp):
    answer = submit(
        client, "/subscribe", {"email": ADA, "topics": ["slam"], "language": "en", **RHYTHM}
    )
    assert answer.status_code == 200
    pending = reader(settings)
    assert (pending["cadence"], pending["hour"], pending["next"]) == ("daily", None, None)

    path = confirm_path(smtp.messages[0])
    page = client.get(path).get_data(as_text=True)
    assert "weekly on Monday at 07:00 Asia/Shanghai" in page
    before = datetime.now(UTC)
    submit(client, path, {})
    weekly_on_monday_at_seven_in_shanghai(settings, before, datetime.now(UTC))


@pytest.mark.parametrize(
    "field, value, shown",
    [
        ("timezone", "Mars/Olympus", "&#39;Mars/Olympus&#39; is not an IANA time zone"),
        ("timezone", "<b>x</b>", "&#39;&lt;b&gt;x&lt;/b&gt;&#39; is not an IANA time zone"),
        ("hour", "25", "Choose an hour from the list."),
        ("cadence", "monthly", "Choose daily or weekly."),
    ],
)
def test_a_bad_rhythm_on_the_form_keeps_what_was_typed(settings, client, smtp, field, value, shown):
    fields = {"email": ADA, "topics": ["slam", "nerf"], "language": "de", **RHYTHM, field: value}
    answer = submit(client, "/subscribe", fields)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and shown in html and "<b>x</b>" not in html
    assert f'href="#{field}-field"' in html  # the error summary leads to the field
    assert f'value="{ADA}"' in html and 'value="nerf" checked' in html
    assert '<option value="de" lang="de" selected>' in html
    if field != "cadence":
        assert 'id="cadence-weekly" name="cadence" value="weekly" checked' in html
    assert smtp.messages == [] and store_is_empty(settings)


def test_a_daily_subscription_ignores_the_weekday_field(settings, client, smtp):
    fields = {"email": ADA, "topics": ["slam"], "language": "en", **RHYTHM, "cadence": "daily"}
    submit(client, "/subscribe", fields)
    submit(client, confirm_path(smtp.messages[0]), {})
    now = reader(settings)
    assert (now["cadence"], now["day"], now["hour"]) == ("daily", None, 7)
    assert now["next"].astimezone(SHANGHAI).hour == 7


def test_the_form_without_rhythm_fields_subscribes_as_before(settings, client, smtp):
    subscribe_form(client, ADA, "slam")
    submit(client, confirm_path(smtp.messages[0]), {})
    now = reader(settings)
    assert (now["cadence"], now["hour"], now["next"]) == ("daily", None, None)


def test_preferences_change_the_rhythm_and_keep_delivered_through(settings, cli, client):
    subscribe(cli, ADA, "SLAM")
    through = datetime(2026, 11, 30, 6, tzinfo=UTC)
    with session_scope(settings) as session:
        store.get_subscriber(session, ADA).delivered_through = through
    path = token_path(settings, "preferences", ADA)
    html = client.get(path).get_data(as_text=True)
    assert "It comes daily when built." in html
    assert 'id="timezone-field" name="timezone" value=""' in html
    assert '<script src="/static/timezone.js" defer></script>' in html

    form = {"action": "save", "topics": ["slam"], "language": "en", "format": "html"}
    answer = submit(client, path, {**form, **RHYTHM})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("?done=save")
    now = reader(settings)
    assert (now["cadence"], now["day"], now["hour"], now["zone"]) == (
        "weekly",
        0,
        7,
        "Asia/Shanghai",
    )
    assert now["next"].astimezone(SHANGHAI).strftime("%a %H:%M") == "Mon 07:00"
    assert now["through"] == through
    html = client.get(path).get_data(as_text=True)
    assert "It comes weekly on Monday at 07:00 Asia/Shanghai." in html
    assert 'value="Asia/Shanghai"' in html and '<option value="7" selected>' in html

    bad = submit(client, path, {**form, **RHYTHM, "timezone": "Nowhere/Land", "language": "ja"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Nothing was saved: &#39;Nowhere/Land&#39;" in html
    assert 'value="Nowhere/Land"' in html  # what was typed stays in the field
    assert reader(settings) == now


def test_the_time_zone_field_is_the_script_and_the_static_file_is_served(client):
    script = client.get("/static/timezone.js")
    assert script.status_code == 200 and b"resolvedOptions().timeZone" in script.data
    html = client.get("/subscribe").get_data(as_text=True)
    assert '<label for="timezone-field">Time zone</label>' in html and "data-browser-zone" in html
