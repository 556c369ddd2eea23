"""Failures in words: when Redis, the database, the mail server or the disk fails, a command
ends with one line that names the setting or file, says what was tried, what the other side
said and what to do, and with the exit status of that kind of failure (`ExitStatus`). Only
`--debug` shows a traceback. Every case here is a real failure of a real part on loopback:
a port where nothing listens, a database that does not exist, a file that is no database.
"""

from __future__ import annotations

import os
import socket
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from newsletter import db
from newsletter.cli.common import ExitStatus, exit_status, file_failure, in_words
from newsletter.config import get_settings
from newsletter.errors import QueueError, StorageError
from tests.helpers import POSTGRES_URL, paper, postgres_schema, set_env, store_papers, subscribe
from tests.smtp_server import LocalSMTPServer

# About how failures are shown, not about either database: once, on the default SQLite file,
# with PostgreSQL set per test where it is what fails.
pytestmark = pytest.mark.parametrize("database_url", [None])

DAY = date(2026, 11, 27)


def closed_port() -> int:
    """A loopback port where nothing listens: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def set_raw(monkeypatch, **values: str) -> None:
    """Set variables that may not make valid settings (`set_env` reads them back at once)."""
    for key, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{key.upper()}", value)
    get_settings.cache_clear()


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error: ")]


def failed(cli, *args: str, status: ExitStatus) -> list[str]:
    """Run a command that must fail with `status`, in words: its error lines, no traceback."""
    result = cli(*args, ok=False)
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert lines, result.output
    return lines


@pytest.fixture
def one_message_due(cli, settings, example_topics):
    """One subscriber, one paper: a `send` that has one message to deliver."""
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    return settings


# ---------------------------------------------------------------------------------- Redis


def redis_words_for(url: str) -> str:
    """What a real client meets at `url`, in the words a command ends with."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    with pytest.raises(redis.RedisError) as raised:
        client.ping()
    client.close()
    failure = in_words(raised.value)
    assert isinstance(failure, QueueError) and exit_status(failure) == ExitStatus.QUEUE
    return str(failure)


def test_redis_on_a_closed_port_in_words(settings, monkeypatch):
    port = closed_port()
    url = f"redis://127.0.0.1:{port}/0"
    set_env(monkeypatch, redis_url=url)

    assert redis_words_for(url) == (
        f"NEWSLETTER_REDIS_URL={url}: cannot connect to Redis at 127.0.0.1:{port}"
        " (Connection refused); start Redis there or correct the URL (unset, the queue is a"
        " file in NEWSLETTER_VAR_DIR)"
    )


def test_a_send_that_meets_redis_down_ends_with_those_words_and_exit_5(
    cli, one_message_due, monkeypatch
):
    port = closed_port()
    url = f"redis://127.0.0.1:{port}/0"
    # Sends paced across workers go through Redis: the send meets it down.
    set_env(monkeypatch, redis_url=url, send_rate="100")

    (line,) = failed(cli, "send", "--date", DAY.isoformat(), status=ExitStatus.QUEUE)

    # What the send was doing (its own words), then what Redis said, in ours.
    assert line.endswith(f": {redis_words_for(url)}")
    assert "Error 111" not in line


def test_a_redis_url_without_its_scheme_stops_every_command_before_it_starts(cli, monkeypatch):
    set_raw(monkeypatch, redis_url="127.0.0.1:6379/0")
    expected = [
        "Error: NEWSLETTER_REDIS_URL=127.0.0.1:6379/0: must start with redis://, rediss:// or"
        " unix://, like redis://127.0.0.1:6379/0"
    ]
    for command in (["status"], ["run"], ["worker"]):
        assert failed(cli, *command, status=ExitStatus.CONFIG) == expected


def test_a_redis_database_the_server_does_not_have(settings, monkeypatch, redis_url):
    parts = urlsplit(redis_url)
    url = f"redis://{parts.hostname}:{parts.port}/99"
    set_env(monkeypatch, redis_url=url)

    assert redis_words_for(url) == (
        f"NEWSLETTER_REDIS_URL={url}: Redis at {parts.hostname}:{parts.port} has no database 99"
        " (DB index is out of range); use one from 0 to 15 (or raise `databases` in redis.conf)"
    )


def test_a_redis_password_is_never_shown(cli, one_message_due, monkeypatch):
    port = closed_port()
    set_env(monkeypatch, redis_url=f"redis://:pässw0rd@127.0.0.1:{port}/0", send_rate="100")

    result = cli("send", "--date", DAY.isoformat(), ok=False)

    assert result.exit_code == ExitStatus.QUEUE
    assert f"NEWSLETTER_REDIS_URL=redis://:********@127.0.0.1:{port}/0:" in result.output
    assert "pässw0rd" not in result.output


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_url_on(port: int, database: str = "test") -> str:
    parts = urlsplit(POSTGRES_URL)
    return f"postgresql+psycopg://{parts.username}@{parts.hostname}:{port}/{database}"


def test_postgresql_on_a_closed_port(cli, monkeypatch):
    port = closed_port()
    url = postgres_url_on(port)
    set_env(monkeypatch, database_url=url)

    assert failed(cli, "topics", "list", status=ExitStatus.DATABASE) == [
        f"Error: NEWSLETTER_DATABASE_URL={url}: cannot use PostgreSQL at 127.0.0.1:{port}"
        " (Connection refused); start PostgreSQL there, or correct the host and port in the URL"
    ]


def test_a_postgresql_database_that_does_not_exist(cli, monkeypatch):
    with postgres_schema():  # skips, saying why, where no PostgreSQL runs
        pass
    port = urlsplit(POSTGRES_URL).port or 5432
    url = postgres_url_on(port, "no_such_database")
    set_env(monkeypatch, database_url=url)

    assert failed(cli, "topics", "list", status=ExitStatus.DATABASE) == [
        f"Error: NEWSLETTER_DATABASE_URL={url}: cannot use PostgreSQL at 127.0.0.1:{port}"
        ' (database "no_such_database" does not exist); create it (createdb -h 127.0.0.1'
        f" -p {port} -U postgres no_such_database), or correct its name"
    ]


def test_a_postgresql_login_that_is_refused(cli, monkeypatch):
    with postgres_schema():  # skips, saying why, where no PostgreSQL runs
        pass
    port = urlsplit(POSTGRES_URL).port or 5432
    url = f"postgresql+psycopg://no_such_role:hunter2@127.0.0.1:{port}/test"
    set_env(monkeypatch, database_url=url)

    (line,) = failed(cli, "topics", "list", status=ExitStatus.DATABASE)

    assert line.startswith(
        f"Error: NEWSLETTER_DATABASE_URL=postgresql+psycopg://no_such_role:********@127.0.0.1:"
        f"{port}/test: cannot use PostgreSQL at 127.0.0.1:{port} ("
    )
    # Which words depend on pg_hba.conf (no such role, or a failed password): the advice not.
    assert line.endswith(
        "); check the user and password in the URL (and pg_hba.conf on the server)"
    )
    assert "hunter2" not in line


def test_a_password_with_a_slash_is_masked_on_every_line(cli, monkeypatch):
    # SQLAlchemy reads "Se/cr3t" whole (and this server's trust login ignores it); urlsplit
    # ended the host part at the "/" and so found no password to mask.
    with postgres_schema() as exact:
        url = exact.replace("://postgres@", "://postgres:Se/cr3t@")
        set_env(monkeypatch, database_url=url)
        lines = cli("init").output + cli("db", "upgrade").output
        masked = url.replace("Se/cr3t", "********")
        assert f"Database ready: {masked}\n" in lines and f"Schema up to date: {masked}\n" in lines
    port = closed_port()
    set_env(monkeypatch, database_url=postgres_url_on(port).replace("@", ":Se/cr3t@", 1))

    (line,) = failed(cli, "topics", "list", status=ExitStatus.DATABASE)

    assert line.startswith(
        f"Error: NEWSLETTER_DATABASE_URL=postgresql+psycopg://postgres:********@127.0.0.1:{port}"
        f"/test: cannot use PostgreSQL at 127.0.0.1:{port} (Connection refused)"
    )
    assert "cr3t" not in lines + line


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_the_urls_hosting_providers_hand_out_work(cli, monkeypatch, scheme):
    with postgres_schema() as exact:
        given = exact.replace("postgresql+psycopg://", f"{scheme}://")
        set_env(monkeypatch, database_url=given)

        cli("topics", "add", "SLAM", "--keyword", "loop closure")

        assert "SLAM" in cli("topics", "list").output
        assert f"NEWSLETTER_DATABASE_URL={exact}" in cli("config").output
        db.engine_for(exact).dispose()


def test_mysql_is_said_to_be_unsupported(cli, monkeypatch):
    set_raw(monkeypatch, database_url="mysql://digest:hunter2@127.0.0.1/newsletter")

    assert failed(cli, "topics", "list", status=ExitStatus.CONFIG) == [
        "Error: NEWSLETTER_DATABASE_URL=mysql://digest:********@127.0.0.1/newsletter: MySQL is"
        " not supported: only SQLite (sqlite:///path/to/file.db) and PostgreSQL"
        " (postgresql://…) are (and tested)"
    ]


def test_a_driver_that_is_not_installed_names_what_to_install(cli, monkeypatch):
    pytest.importorskip("psycopg")  # the one we ship with: psycopg2 is the missing one here
    if _installed("psycopg2"):
        pytest.skip("psycopg2 is installed here: no driver to miss")
    set_raw(monkeypatch, database_url="postgresql+psycopg2://digest@127.0.0.1/newsletter")

    (line,) = failed(cli, "topics", "list", status=ExitStatus.CONFIG)

    assert line.startswith(
        "Error: NEWSLETTER_DATABASE_URL=postgresql+psycopg2://digest@127.0.0.1/newsletter: the"
        " driver psycopg2 is not installed"
    )
    assert "pip install '.[postgres]'" in line


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


# -------------------------------------------------------------------------------- SQLite


def sqlite_setting(settings) -> str:
    return f"NEWSLETTER_DATABASE_URL={settings.database_url}"


def test_a_file_that_is_no_database_is_named(cli, settings):
    path = settings.var_dir / "newsletter.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is a note someone saved here, not a database\n" * 50)

    assert failed(cli, "topics", "list", status=ExitStatus.DATABASE) == [
        f"Error: {sqlite_setting(settings)}: {path} is not a SQLite database (it does not"
        " begin like one); point the URL at the database file, or restore that file from a"
        " backup"
    ]


def test_a_zero_length_database_file_is_an_error_never_recreated(cli, settings):
    path = settings.var_dir / "newsletter.db"
    path.parent.mkdir(parents=True)
    path.touch()

    for command in (["topics", "list"], ["init"]):
        assert failed(cli, *command, status=ExitStatus.DATABASE) == [
            f"Error: {sqlite_setting(settings)}: {path} is empty (0 bytes), so it holds no"
            " database; restore it from a backup, or delete it to start with an empty database"
        ]
    assert path.stat().st_size == 0  # still the file that was there: nothing written over it


def test_a_truncated_database_is_said_to_be_damaged(cli, settings, example_topics):
    path = settings.var_dir / "newsletter.db"
    db.engine_for(settings.database_url).dispose()  # every page on disk, no WAL left behind
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with path.open("r+b") as handle:
        handle.truncate(4096)  # the first page: the schema, pointing at pages now gone

    assert failed(cli, "topics", "list", status=ExitStatus.DATABASE) == [
        f"Error: {sqlite_setting(settings)}: cannot use {path} (database disk image is"
        f" malformed); restore it from a backup (`sqlite3 {path} .recover` saves what it can)"
    ]


def test_a_database_a_newer_version_migrated_says_to_upgrade_the_program(cli, settings):
    cli("init")
    with db.engine_for(settings.database_url).begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
    expected = [
        f"Error: {sqlite_setting(settings)}: this database was migrated by a newer version of"
        " this program (schema 0099_future, which this one does not know): upgrade the program"
    ]

    for command in (["topics", "list"], ["db", "upgrade"], ["db", "current"], ["init"]):
        assert failed(cli, *command, status=ExitStatus.DATABASE) == expected, command


# --------------------------------------------------------------------------- files, disk


def test_a_var_folder_that_cannot_be_made(cli, settings, monkeypatch, tmp_path):
    # As root, permissions stop nothing: a regular file where a folder is needed does.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file\n")
    var_dir = blocker / "var"
    set_env(monkeypatch, var_dir=str(var_dir))

    assert failed(cli, "init", status=ExitStatus.FILES) == [
        f"Error: NEWSLETTER_VAR_DIR={var_dir}: cannot use {var_dir} (Not a directory); a file"
        " stands where a folder is needed: move it away, or choose another"
    ]


def test_an_outbox_that_cannot_be_written_stops_send_before_it_starts(
    cli, one_message_due, monkeypatch, tmp_path
):
    outbox = tmp_path / "outbox-is-a-file"
    outbox.write_text("a file\n")
    set_env(monkeypatch, outbox_dir=str(outbox))

    assert failed(cli, "send", "--date", DAY.isoformat(), status=ExitStatus.FILES) == [
        f"Error: NEWSLETTER_OUTBOX_DIR={outbox}: cannot use {outbox} (File exists); a file"
        " stands where a folder is needed: move it away, or choose another"
    ]
    assert "Digest" not in cli("status", ok=False).output  # no digest was built, none sent


def test_a_full_disk_is_said_to_be_full(settings):
    # /dev/full: a real device on which every write fails as on a full disk.
    with pytest.raises(OSError) as raised, open("/dev/full", "w") as full:  # noqa: PTH123
        full.write("x")
        full.flush()
    failure = in_words(raised.value)
    assert isinstance(failure, StorageError)
    assert str(failure) == (
        "a file or folder failed (No space left on device); free some space on its disk"
    )
    assert file_failure(OSError(28, os.strerror(28), "/srv/newsletter/var/outbox/x.eml")) == (
        "cannot use /srv/newsletter/var/outbox/x.eml (No space left on device); free some"
        " space on its disk"
    )


# ---------------------------------------------------------------------------- SMTP


def test_an_smtp_password_never_garbles_the_servers_words(cli, one_message_due, monkeypatch):
    # "p" is in "supported": masking by substring made this "su********orted". The relay
    # offers AUTH only after STARTTLS, which the URL turns off: smtplib finds no AUTH.
    with LocalSMTPServer(starttls=True, auth=("u", "p")) as smtp:
        set_env(monkeypatch, smtp_url=f"smtp://u:p@127.0.0.1:{smtp.port}?starttls=never")

        lines = failed(cli, "send", "--date", DAY.isoformat(), status=ExitStatus.MAIL)

    assert lines == [
        f"Error: cannot use SMTP server 127.0.0.1:{smtp.port}: SMTP AUTH extension not"
        " supported by server.; a relay that offers AUTH only after STARTTLS needs"
        " ?starttls=require (or smtps://) in NEWSLETTER_SMTP_URL; one that needs no login,"
        " no user:password in it"
    ]


def test_an_smtp_url_without_its_scheme_never_shows_the_password(cli, monkeypatch):
    set_raw(monkeypatch, smtp_url="me:hunter2@mail.example.org:587")
    shown = "me:********@mail.example.org:587"

    send = cli("send", ok=False)
    config = cli("config", ok=False)

    expected = (
        f"Error: NEWSLETTER_SMTP_URL={shown}: must start with smtp:// or smtps:// and name a"
        " host, like smtp://user:pass@host:587 or smtps://user:pass@host:465"
    )
    assert send.exit_code == config.exit_code == ExitStatus.CONFIG
    assert error_lines(send) == error_lines(config) == [expected]
    assert f"NEWSLETTER_SMTP_URL={shown}\n" in config.stdout  # masked, not all stars
    assert "hunter2" not in send.output + config.output


# ---------------------------------------------------------------------------- --debug


@pytest.mark.parametrize("how", [["--debug"], ["NEWSLETTER_DEBUG=1"]])
def test_debug_shows_the_traceback_too(cli, settings, monkeypatch, how):
    path = settings.var_dir / "newsletter.db"
    path.parent.mkdir(parents=True)
    path.touch()
    if how == ["--debug"]:
        args = ["--debug", "topics", "list"]
    else:
        monkeypatch.setenv("NEWSLETTER_DEBUG", "1")
        args = ["topics", "list"]

    result = cli(*args, ok=False)

    assert result.exit_code == ExitStatus.DATABASE
    assert "Traceback (most recent call last):" in result.stderr
    assert "in check_sqlite_file" in result.stderr  # where it happened
    assert (
        result.stderr.rstrip()
        .splitlines()[-1]
        .startswith(f"Error: {sqlite_setting(settings)}: {path} is empty")
    )
