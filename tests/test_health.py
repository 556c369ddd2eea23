"""Liveness and readiness: `/healthz` answers whatever is down; `/readyz` asks the real database
(SQLite and PostgreSQL), a real Redis, the schema and the digests, and says which one fails."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command

from newsletter import db
from newsletter.daily import send
from newsletter.web import create_app
from newsletter.web.health import CHECK_TIMEOUT, day_due
from tests.helpers import free_port, paper, set_env, store_papers, subscribe

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}
SECRET = "hunter2-not-for-logs"


def ready(settings, **kwargs):
    """A fresh app's /readyz: (status code, JSON body)."""
    answer = create_app(settings).test_client().get("/readyz", **kwargs)
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.mimetype == "application/json"
    return answer.status_code, answer.get_json()


def failing(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


@pytest.fixture
def migrated(settings):
    db.upgrade(settings)
    return settings


def today(settings) -> date:
    return settings.today()


# ---------------------------------------------------------------- liveness


@pytest.mark.parametrize("database_url", [None])
def test_healthz_answers_without_asking_the_database(settings, monkeypatch):
    # Nothing listens there: a page that asked the database would fail.
    unreachable = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    config = set_env(monkeypatch, database_url=unreachable, redis_url="redis://127.0.0.1:1/0")
    client = create_app(config).test_client()

    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert client.get("/readyz").status_code == 503  # the same app, asked about readiness


# ---------------------------------------------------------------- readiness


def test_ready_on_a_migrated_database_before_any_digest(migrated):
    status, body = ready(migrated)

    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "schema", "daily_job"}  # no Redis set
    assert body["checks"]["database"]["backend"] in ("sqlite", "postgresql")
    assert body["checks"]["schema"]["state"] == "current"
    assert body["checks"]["daily_job"]["state"] == "no digest yet"


@pytest.mark.parametrize("database_url", [None])
def test_a_database_that_does_not_answer_is_not_ready(settings, monkeypatch):
    unreachable = f"postgresql+psycopg://reader:{SECRET}@127.0.0.1:{free_port()}/nothing"
    config = set_env(monkeypatch, database_url=unreachable)

    status, body = ready(config)

    assert status == 503 and body["status"] == "fail"
    assert failing(body) == {"database", "schema", "daily_job"}
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["schema"]["state"].startswith("not checked")
    text = str(body)
    assert SECRET not in text and "Traceback" not in text


def test_one_migration_behind_is_not_ready(migrated):
    command.downgrade(db.alembic_config(migrated), "-1")

    status, body = ready(migrated)

    assert status == 503
    assert failing(body) == {"schema", "daily_job"}
    assert "newsletter db upgrade" in body["checks"]["schema"]["state"]
    assert body["checks"]["daily_job"]["state"] == "not checked: the schema is out of date"

    db.upgrade(migrated)
    assert ready(migrated)[0] == 200


def test_redis_on_a_closed_port_is_not_ready_and_its_password_is_not_shown(migrated, monkeypatch):
    config = set_env(monkeypatch, redis_url=f"redis://:{SECRET}@127.0.0.1:{free_port()}/11")

    status, body = ready(config)

    assert status == 503
    assert failing(body) == {"redis"}
    assert "Connection" in body["checks"]["redis"]["error"]  # said to the operator (localhost)
    assert SECRET not in str(body)

    status, public = ready(config, environ_base=REMOTE)  # anyone else: which check, not why
    assert status == 503 and failing(public) == {"redis"}
    assert "error" not in public["checks"]["redis"]


def test_a_redis_that_answers_is_ready(migrated, monkeypatch, redis_url):
    config = set_env(monkeypatch, redis_url=redis_url)

    status, body = ready(config)

    assert status == 200, body
    assert body["checks"]["redis"]["ok"] is True


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("database_url", [None])
def test_a_redis_that_never_answers_is_given_up_on_in_seconds(migrated, monkeypatch, silent_server):
    config = set_env(monkeypatch, redis_url=f"redis://127.0.0.1:{silent_server}/11")
    started = datetime.now(UTC)

    status, body = ready(config)

    took = (datetime.now(UTC) - started).total_seconds()
    assert status == 503 and failing(body) == {"redis"}
    assert took < CHECK_TIMEOUT + 2
    assert body["checks"]["redis"]["ms"] >= (CHECK_TIMEOUT - 0.5) * 1000


# ---------------------------------------------------------------- the daily job


@pytest.fixture
def reader(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    return settings


def test_a_digest_delivered_today_is_fresh(reader):
    send.send(reader, today(reader))

    status, body = ready(reader)

    assert status == 200, body
    daily = body["checks"]["daily_job"]
    assert daily["state"] == "fresh"
    assert daily["last_success"] == today(reader).isoformat()
    assert daily["age_hours"] < 1


def test_a_digest_older_than_the_schedule_allows_is_stale(reader):
    old = today(reader) - timedelta(days=10)
    send.send(reader, old)

    status, body = ready(reader)

    assert status == 503
    assert failing(body) == {"daily_job"}
    daily = body["checks"]["daily_job"]
    assert daily["state"] == "stale"
    assert daily["last_success"] == old.isoformat()
    assert daily["due"] > old.isoformat()


def test_a_digest_still_being_delivered_is_no_success(reader):
    send.send(reader, today(reader) - timedelta(days=10))
    store_papers(reader, "SLAM", paper(2))  # something new for today's digest
    send.build(reader, today(reader))  # delivery rows written, nothing sent yet

    status, body = ready(reader)

    assert status == 503
    assert body["checks"]["daily_job"]["state"] == "stale"

    send.send(reader, today(reader))

    assert ready(reader)[0] == 200


@pytest.mark.parametrize("database_url", [None])
def test_the_day_due_follows_time_zone_send_days_and_grace(settings, monkeypatch):
    config = set_env(
        monkeypatch,
        daily_time="06:00",
        timezone="Asia/Shanghai",  # UTC+8
        send_days="mon,tue,wed,thu,fri",
        daily_grace_hours="6",
    )
    monday, friday = date(2026, 11, 30), date(2026, 11, 27)

    # Monday 06:00 in Shanghai is Sunday 22:00 UTC; with the grace, Monday 04:00 UTC.
    assert day_due(config, datetime(2026, 11, 30, 3, 59, tzinfo=UTC)) == friday
    assert day_due(config, datetime(2026, 11, 30, 4, 0, tzinfo=UTC)) == monday
    # Saturday and Sunday: Friday's digest is the one promised.
    assert day_due(config, datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) == friday

    config = set_env(monkeypatch, daily_grace_hours="30")
    assert day_due(config, datetime(2026, 11, 30, 12, 0, tzinfo=UTC)) == friday
