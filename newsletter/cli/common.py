"""What every command shares: settings made ready, the database, the console and its progress
bar, `--date` options, and how errors are shown.

A failure of something outside this program (a setting, the database, Redis, the mail server,
a file or the disk, arXiv or a translator) ends a command with one line: the setting or file,
what was tried, what the other side said, what to do; and with an exit status of its own
(`ExitStatus`), so that a script or a process manager can tell them apart. `--debug` (or
NEWSLETTER_DEBUG=1) adds the traceback. Anything else is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import errno
import json
import re
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from newsletter.errors import (
    CodeLinkError,
    ConfigError,
    DatabaseError,
    DeliveryError,
    FetchError,
    NewsletterError,
    QueueError,
    StorageError,
    TranslationError,
)

if TYPE_CHECKING:
    import redis
    from rich.progress import Progress
    from sqlalchemy.orm import Session

    from newsletter.config import Settings

# Every command's module imports this one, `newsletter --help` too: what is heavy to import
# (SQLAlchemy, the settings' pydantic, redis, the database) is imported where it is used.

# markup off: paper titles and names are user data, and "[...]" in them must print as is.
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

DEBUG = "newsletter.debug"
"""Where the context's `meta` keeps `--debug` for the error handler of every group."""


class ExitStatus(IntEnum):
    """How a command ended; the README's "Exit status" table says the same."""

    OK = 0
    FAILED = 1  # the work itself: a topic arXiv failed, a message refused, a row rejected, input
    USAGE = 2  # the command line itself (Typer's own status)
    CONFIG = 3  # a setting (NEWSLETTER_*, .env) that cannot work
    DATABASE = 4  # the database: unreachable, missing, refused the login, damaged, full
    QUEUE = 5  # the queue: Redis unreachable or refusing, or the queue's SQLite file
    MAIL = 6  # the mail server: unreachable, TLS, login
    FILES = 7  # a file or folder: permissions, a full or read-only disk, a file for a folder
    SERVICE = 8  # a web service a command could not do without: arXiv, Hugging Face, translator


STATUS_OF = (
    (ConfigError, ExitStatus.CONFIG),
    (DatabaseError, ExitStatus.DATABASE),
    (QueueError, ExitStatus.QUEUE),
    (DeliveryError, ExitStatus.MAIL),
    (StorageError, ExitStatus.FILES),
    ((FetchError, CodeLinkError, TranslationError), ExitStatus.SERVICE),
)


class NewsletterGroup(typer.core.TyperGroup):
    """Turns the errors we raise on purpose, and the failures of the parts outside the program,
    into clear lines and their exit status, with no traceback unless `--debug` asks for it."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as error:
            failure = in_words(error)
            if failure is None:
                raise  # a bug of ours: its traceback is what to report
            if ctx.meta.get(DEBUG):
                err_console.print("".join(traceback.format_exception(error)).rstrip())
            for line in str(failure).splitlines() or [type(error).__name__]:
                err_console.print(f"Error: {line}")
            raise typer.Exit(code=exit_status(failure)) from error


def exit_status(error: NewsletterError) -> ExitStatus:
    for kinds, status in STATUS_OF:
        if isinstance(error, kinds):
            return status
    return ExitStatus.FAILED


def in_words(error: Exception) -> NewsletterError | None:
    """The failure of an outside part as one of our errors, in words; None for anything else
    (Typer's own exits, and bugs)."""
    if isinstance(error, NewsletterError):
        return _cause_in_words(error)
    return _outside_in_words(error)


def _cause_in_words(error: NewsletterError) -> NewsletterError:
    """Our error, with the raw text of the outside failure it wraps (`f"…: {error}"`, often
    "Error 111 connecting to 127.0.0.1:6379. Connection refused.") put in words: the setting,
    and what to do. Its class, and so its exit status, stays."""
    cause = error.__cause__
    raw = str(cause) if isinstance(cause, Exception) else ""
    described = _outside_in_words(cause) if raw and raw in str(error) else None
    if described is None:
        return error
    try:
        return type(error)(str(error).replace(raw, str(described)))
    except TypeError:  # a class that takes more than a message
        return error


def _outside_in_words(error: Exception) -> NewsletterError | None:
    # An error of SQLAlchemy's or redis's can only come from a command that imported them.
    sqlalchemy_errors, redis_module = sys.modules.get("sqlalchemy.exc"), sys.modules.get("redis")
    if sqlalchemy_errors is not None and isinstance(error, sqlalchemy_errors.DBAPIError):
        from newsletter import db

        return db.describe_error(error, _current("database_url") or "sqlite://")
    if redis_module is not None and isinstance(error, redis_module.RedisError):
        return QueueError(redis_failure(error, _current("redis_url")))
    if isinstance(error, sqlite3.Error):
        # SQLAlchemy wraps every error of its own: a bare one is Huey's, on the queue's file.
        return QueueError(queue_file_failure(error))
    if isinstance(error, OSError) and (error.filename or error.errno in DISK_ERRNOS):
        return StorageError(file_failure(error))
    return None  # a socket's error, say, that the code meeting it should have put in words


def _current(name: str):
    """A setting for an error message; None when the settings themselves are what failed."""
    from newsletter.config import get_settings

    try:
        value = getattr(get_settings(), name)
    except NewsletterError:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def redis_failure(error: redis.RedisError, url: str | None) -> str:
    """`NEWSLETTER_REDIS_URL=…: cannot connect to Redis at host:port (what it said); what to do`."""
    import redis

    from newsletter.config import redis_where, shown_setting

    url = url or "redis://localhost:6379/0"
    where = redis_where(url)
    setting = shown_setting("redis_url", url)
    said = str(error).strip().rstrip(".")
    # redis-py: "Error 111 connecting to 127.0.0.1:6399. Connection refused."
    said = re.sub(r"^Error -?\d+ connecting to \S+?\.\s+", "", said)
    if isinstance(error, redis.AuthenticationError) or "WRONGPASS" in said or "NOAUTH" in said:
        return (
            f"{setting}: Redis at {where} refused the login ({said}); check the user and"
            " password in the URL"
        )
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return (
            f"{setting}: cannot connect to Redis at {where} ({said}); start Redis there or"
            " correct the URL (unset, the queue is a file in NEWSLETTER_VAR_DIR)"
        )
    if "DB index is out of range" in said:
        from redis.connection import parse_url

        number = parse_url(url).get("db", 0)
        return (
            f"{setting}: Redis at {where} has no database {number} ({said}); use"
            " one from 0 to 15 (or raise `databases` in redis.conf)"
        )
    return f"{setting}: Redis at {where} failed ({said})"


def queue_file_failure(error: sqlite3.Error) -> str:
    from newsletter import db

    var_dir = _current("var_dir") or Path("var")
    path = Path(var_dir) / "huey.db"
    return (
        f"NEWSLETTER_VAR_DIR={var_dir}: cannot use the queue's file {path} ({error});"
        f" {db.sqlite_advice(error, path)}"
    )


DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
"""A file system's failures, said even when no file is named (a write to a full disk)."""
FILE_ADVICE = {
    errno.ENOSPC: "free some space on its disk",
    errno.EDQUOT: "free some space, or raise this user's disk quota",
    errno.EACCES: "let the user this runs as write there, or choose another folder",
    errno.EPERM: "let the user this runs as write there, or choose another folder",
    errno.EROFS: "that file system is read-only: choose a folder on a writable one",
    errno.ENOTDIR: "a file stands where a folder is needed: move it away, or choose another",
    errno.EEXIST: "a file stands where a folder is needed: move it away, or choose another",
    errno.EISDIR: "a folder stands where a file is needed",
    errno.ENOENT: "create it, or correct the path",
    errno.EIO: "check the disk and the file system it is on",
}


def file_failure(error: OSError) -> str:
    """`NEWSLETTER_OUTBOX_DIR=…: cannot use /path (Not a directory); what to do`."""
    path = error.filename
    said = error.strerror or str(error) or type(error).__name__
    advice = FILE_ADVICE.get(error.errno or 0)
    setting = _setting_of(Path(path)) if path else None
    line = f"cannot use {path} ({said})" if path else f"a file or folder failed ({said})"
    if setting:
        line = f"{setting}: {line}"
    return f"{line}; {advice}" if advice else line


def _setting_of(path: Path) -> str | None:
    """The setting whose file or folder `path` is, or lies in, the most specific first."""
    from newsletter.config import get_settings

    try:
        settings = get_settings()
    except NewsletterError:
        return None
    candidates = [
        ("NEWSLETTER_OUTBOX_DIR", settings.outbox_dir),
        ("NEWSLETTER_INBOX", settings.inbox),
        ("NEWSLETTER_DKIM_KEY_FILE", settings.dkim_key_file),
        ("NEWSLETTER_VAR_DIR", settings.var_dir),
    ]
    target = path.absolute()
    for variable, value in candidates:
        if value is not None:
            folder = Path(value).absolute()
            if target == folder or folder in target.parents:
                return f"{variable}={value}"
    return None


def check_folders(settings: Settings) -> None:
    """Make sure the folders the daily work writes to take a file, before any of it starts:
    the var folder and, without an SMTP URL, the outbox. A folder that cannot be made or
    written raises its OSError, which says which and why (`file_failure`)."""
    folders = [settings.var_dir]
    if settings.smtp_url is None and settings.outbox_dir is not None:
        folders.append(settings.outbox_dir)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        # Only writing tells: as root, permissions (os.access) say yes to a read-only disk.
        with tempfile.TemporaryFile(dir=folder):
            pass


def ready_settings() -> Settings:
    """Settings for the daily work: its folders writable, the database created or migrated
    where that is allowed (see db)."""
    from newsletter import db
    from newsletter.config import get_settings

    current = get_settings()
    check_folders(current)
    db.ensure_schema(current)
    return current


@contextmanager
def open_session() -> Iterator[Session]:
    """A unit of work on the database (see `db.session_scope`), its schema made current first
    where that is allowed."""
    from newsletter import db
    from newsletter.config import get_settings

    current = get_settings()
    db.ensure_schema(current)
    with db.session_scope(current) as session:
        yield session


DAY_FORMAT = "%Y-%m-%d"


def day_option(flag: str, help: str) -> typer.models.OptionInfo:
    """An option that takes a day as YYYY-MM-DD: Typer reads it as a datetime at midnight, and
    refuses anything else with a line naming the option and the format."""
    return typer.Option(flag, formats=[DAY_FORMAT], metavar="YYYY-MM-DD", help=help)


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr (stdout stays the command's output), gone when the work ends:
    `label`, the bar, done/total and the time spent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=err_console, transient=True)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def examples_dir() -> Path:
    """The example topics and subscribers: shipped in the package, or the checkout's folder."""
    packaged = Path(__file__).resolve().parents[1] / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "subscribers"
