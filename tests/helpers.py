"""Helpers the test modules share: plain functions, classes and constants, no fixtures (those
are in conftest.py). No test module imports another; what two of them need is here.
"""

from __future__ import annotations

import dataclasses
import email
import importlib
import json
import mailbox
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import ModuleType
from typing import NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import redis
import sqlalchemy
import typer
from sqlalchemy import event, insert, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from newsletter import db, store
from newsletter.cli import app
from newsletter.config import Settings, get_settings
from newsletter.daily import fetch, send
from newsletter.db import engine_for, session_scope
from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.intake.subscribers import email_key
from newsletter.models import Subscriber, SubscriberTopic, new_public_id
from newsletter.sources.arxiv_query import build_query
from newsletter.sources.papers import FetchedPaper
from newsletter.textfmt import readable_paragraphs
from tests.atom import Entry

# -------------------------------------------------------------- the environment a test runs in


REPO = Path(__file__).resolve().parents[1]


SCREENSHOTS = REPO / "var" / "screenshots"
"""Where browser tests write their screenshots (not committed), for a person to look at."""


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    """Change settings for the rest of a test, the way a user would: through the environment."""
    for key, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{key.upper()}", value)
    get_settings.cache_clear()
    return get_settings()


class Cli:
    """Runs `newsletter …` in-process, as a user would type it."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None):
        result = self.runner.invoke(app, list(args), input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"newsletter {' '.join(args)} failed:\n{result.output}"
        return result


def skip_or_fail_in_ci(reason: str) -> NoReturn:
    """Skip, saying why, where something a test needs (a tool, a local server) is absent; fail
    instead in CI, where .ci/run provides all of them and every test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the test must run; .ci/run provides what it needs)")
    pytest.skip(f"{reason}; CI=1 makes this fail")


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now (a server about to start, or one refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    plain_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        skip_or_fail_in_ci(f"PostgreSQL is not reachable at {plain_url} ({error})")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        db.engine_for(url).dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


REDIS_URL = os.environ.get("NEWSLETTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
"""A database of the local Redis that nothing but these tests uses (they empty it); runs that
share a machine at the same time should each set NEWSLETTER_TEST_REDIS_URL to their own."""


class RedisServer:
    """redis-server on 127.0.0.1 and a spare port, without persistence."""

    def __init__(self, folder: Path) -> None:
        program = shutil.which("redis-server")
        if program is None:
            skip_or_fail_in_ci("no redis-server on PATH (apt-get install redis-server)")
        self.program = program
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not listen on {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


# -------------------------------------------------------------- papers, topics and subscribers


DAY1, DAY2 = date(2026, 11, 26), date(2026, 11, 27)


def paper(number: int, title: str | None = None, days_old: int = 0) -> FetchedPaper:
    published = (
        datetime(2026, 11, 20, tzinfo=UTC) + timedelta(hours=number) - timedelta(days=days_old)
    )
    arxiv_id = f"2611.{number:05d}"
    return FetchedPaper(
        arxiv_id=arxiv_id,
        version=1,
        title=title or f"Paper number {number}",
        abstract=f"Abstract of paper {number}.",
        authors=("Ada First", "Bo Second", "Cy Third", "Dee Fourth"),
        categories=("cs.CV",),
        primary_category="cs.CV",
        published=published,
        updated=published,
        comment=None,
        journal_ref=None,
        doi=None,
        abs_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        code_urls=(),
    )


def rich_paper(number: int, title: str | None = None) -> FetchedPaper:
    """A paper whose abstract has math, a macro and a link, as real ones do."""
    return dataclasses.replace(
        paper(number, title),
        abstract=(
            f"We propose \\method{{}}, which reaches ${number}.5\\%$ accuracy on many\n"
            f"benchmarks with less memory. Code: https://github.com/example/p{number}."
        ),
    )


def topic_id(settings, name: str) -> int:
    with session_scope(settings) as session:
        return store.get_topic(session, name).id


def store_papers(settings, topic: str, *papers: FetchedPaper) -> None:
    fetch.save_fetched(settings, topic_id(settings, topic), list(papers))


def subscribe(cli, address: str, *topics: str) -> None:
    args = ["subscribers", "add", address]
    for topic in topics:
        args += ["--topic", topic]
    cli(*args)


def add_subscribers(settings, topic: str, count: int) -> list[str]:
    """`count` active subscribers of one topic, inserted in bulk; their addresses."""
    emails = [f"reader{number:05d}@example.org" for number in range(count)]
    with session_scope(settings) as session:
        topic_id = store.get_topic(session, topic).id
        session.execute(
            insert(Subscriber),
            [{"email": e, "email_key": email_key(e), "public_id": new_public_id()} for e in emails],
        )
        ids = session.scalars(select(Subscriber.id).where(Subscriber.email.in_(emails)))
        session.execute(
            insert(SubscriberTopic), [{"subscriber_id": i, "topic_id": topic_id} for i in ids]
        )
    return emails


def statuses(settings, day: date = DAY2) -> dict[str, tuple[str, str]]:
    """Each recipient of the digest of `day`: its delivery's status and detail."""
    with session_scope(settings) as session:
        digest = store.digest_on(session, day)
        return {
            store.subscriber_by_id(session, d.subscriber_id).email: (d.status.value, d.detail)
            for d in store.deliveries_of(session, digest.id)
        }


# ---------------------------------------------------------------------------------- the outbox


def outbox(settings) -> dict[str, email.message.EmailMessage]:
    """Messages in the outbox by recipient."""
    found = {}
    for path in sorted(Path(settings.outbox_dir).glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        found[message["To"]] = message
    return found


def clear_outbox(settings) -> None:
    for path in Path(settings.outbox_dir).glob("*.eml"):
        path.unlink()


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def outbox_texts() -> dict[str, str]:
    """Recipient → plain text of every .eml file in NEWSLETTER_OUTBOX_DIR."""
    folder = get_settings().outbox_dir
    assert folder is not None and folder.name == "outbox" and folder.parent.name != "var"
    parser = BytesParser(policy=policy.default)
    messages = {}
    for path in sorted(folder.glob("*.eml")):
        message = parser.parsebytes(path.read_bytes())
        messages[message["To"]] = message.get_body(("plain",)).get_content()
    return messages


# -------------------------------------------------------------------------- the CLI's commands


def leaf_commands(group=None, prefix=()):
    # Through get_command, as click finds them: the top-level group imports each on demand.
    group = group or typer.main.get_command(app)
    context = typer.Context(group)
    for name in sorted(group.list_commands(context)):
        command = group.get_command(context, name)
        if hasattr(command, "commands"):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(leaf_commands())


# ------------------------------------------------------------------------ mail that comes back


DSN = """From: MAILER-DAEMON@mx.example.net
To: digest@localhost
Message-ID: <{message_id}@mx.example.net>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.example.net. I'm sorry to have to inform you...

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Fri, 27 Nov 2026 06:00:01 +0000

{recipients}
--B
Content-Type: text/rfc822-headers

From: arXiv Digest <digest@localhost>
Subject: arXiv digest 2026-11-27: 3 new papers in SLAM
Message-ID: {original}

--B--
"""


RECIPIENT = """Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

"""


def dsn(*recipients: tuple[str, str, str, str], original: str = "<unknown@example.org>") -> str:
    """A bounce report about the message `original` (its Message-ID), with a Message-ID of its
    own as every report has."""
    blocks = "".join(
        RECIPIENT.format(address=a, action=act, status=st, diagnostic=diag)
        for a, act, st, diag in recipients
    )
    return DSN.format(recipients=blocks, message_id=uuid.uuid4().hex, original=original)


def digests_sent(cli, settings, *addresses: str) -> dict[str, str]:
    """These addresses subscribed to SLAM and sent a digest: the Message-ID each one got."""
    return {
        to: message["Message-ID"] for to, message in sent_digests(cli, settings, *addresses).items()
    }


def bounce_of(sent: dict[str, str], address: str, status: str, diagnostic: str) -> str:
    """The report a receiving server sends back about the digest `address` got."""
    action = "delayed" if status.startswith("4.") else "failed"
    return dsn((address, action, status, diagnostic), original=sent[address])


def write_mbox(path: Path, *messages: str) -> Path:
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message.encode())
    box.flush()
    box.close()
    return path


def status_of(cli, address: str) -> str:
    rows = json.loads(cli("subscribers", "list", "--json").output)
    return next(r["status"] for r in rows if r["email"] == address)


HEAD = "From: stranger@example.net\nTo: digest@localhost\nMIME-Version: 1.0\n"
"""The first headers of a message a stranger sends to the digest's address."""


def nested(levels: int, subject: str = "hello") -> str:
    """A message of `levels` multipart/mixed parts each inside the last (1,000: 63 KB)."""
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n' for n in range(levels)
    )
    closing = "".join(f"--b{n}--\n" for n in reversed(range(levels)))
    return f"{HEAD}Subject: {subject}\n{opening}Content-Type: text/plain\n\nhi\n{closing}"


SLAM_READERS = ("ada@example.org", "bo@example.org", "cy@example.org")
"""Who `sent_digests` subscribes to SLAM and sends a digest to."""


def mailto_of(message) -> str:
    https_link, mailto = (value.strip(" <>") for value in message["List-Unsubscribe"].split(","))
    return mailto


def request_for(mailto: str, sender: str) -> str:
    """The message a mail client writes when its reader clicks "Unsubscribe" on a mailto."""
    url = urlsplit(mailto)
    request = EmailMessage()
    request["From"] = sender
    request["To"] = unquote(url.path)
    request["Subject"] = parse_qs(url.query)["subject"][0]
    request.set_content("This message was automatically generated by Mail.")
    return request.as_string()


def sent_digests(cli, settings, *addresses: str) -> dict[str, email.message.EmailMessage]:
    """These addresses (SLAM_READERS unless given) subscribed to SLAM and sent a digest: the
    message each one got. The SLAM topic must exist (the `example_topics` fixture)."""
    for address in addresses or SLAM_READERS:
        cli("subscribers", "add", address, "--topic", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    send.send(settings)
    return outbox(settings)


# ---------------------------------------------------------------------------------- the worker


PAPERS = {
    "Alpha": [Entry("2611.00001", "Alpha one"), Entry("2611.00009", "Shared paper")],
    "Beta": [Entry("2611.00002", "Beta one"), Entry("2611.00009", "Shared paper")],
}
"""What the local arXiv of the `arxiv` fixture answers for each of its two topics."""


def query_of(topic: str) -> str:
    return build_query((topic.lower(),), (), (), None)


def load_tasks() -> ModuleType:
    """`newsletter.worker.tasks` as a process started with the current settings imports it."""
    import newsletter.worker.tasks

    return importlib.reload(newsletter.worker.tasks)


@contextmanager
def tasks_on_redis(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """`newsletter.worker.tasks` on the Redis at `url`, as a worker started with it loads it; loaded
    again with the default queue after."""
    set_env(monkeypatch, redis_url=url)
    tasks = load_tasks()
    try:
        yield tasks
    finally:
        tasks.huey.storage.conn.close()
        monkeypatch.delenv("NEWSLETTER_REDIS_URL")
        get_settings.cache_clear()
        load_tasks()


def minutes_of(tasks: ModuleType, name: str) -> list[int]:
    """The minutes of an hour at which the worker's scheduler enqueues the periodic task `name`."""
    return [
        minute
        for minute in range(60)
        if any(
            task.name == name
            for task in tasks.huey.read_periodic(datetime(2026, 11, 28, 3, minute))
        )
    ]


def worker_command() -> list[str]:
    """The installed `newsletter` script next to this Python, else the same entry point."""
    script = Path(sys.executable).with_name("newsletter")
    if script.is_file():
        return [str(script), "worker"]
    return [sys.executable, "-c", "from newsletter.cli import main; main()", "worker"]


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], worker: subprocess.Popen, log: Path, what: str):
    deadline = time.monotonic() + 30
    while not condition():
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}) before {what}:\n{read(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within 30 s; worker log:\n{read(log)}")
        time.sleep(0.1)


def stop(worker: subprocess.Popen) -> int:
    """SIGINT, Huey's graceful stop; killed (and reported) if it does not stop in time."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
    try:
        return worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        pytest.fail("the worker did not stop within 20 s of SIGINT")


class WorkerProcess:
    """`newsletter worker` in a process of its own, started in `folder` with this process's
    environment, its output in `folder/worker.log`: entered once Huey's consumer has started,
    stopped with SIGINT on exit (`code` is then its exit status); `options` are the command's
    (`--no-periodic` for all but one of several)."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder
        self.options = options
        self.log = folder / "worker.log"
        self.process: subprocess.Popen | None = None
        self.code: int | None = None

    def __enter__(self) -> WorkerProcess:
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*worker_command(), *self.options],
                cwd=self.folder,
                env=dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_for(lambda: "Huey consumer started" in self.output(), "start")
        except BaseException:
            stop(self.process)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.code = stop(self.process)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        wait_for(condition, self.process, self.log, what)

    def output(self) -> str:
        return read(self.log)


def ended_sender() -> str:
    """The name a sender of this machine had (see `worker_name`), whose process has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{socket.gethostname()}:{int(done.stdout)}:1"


# ------------------------------------------------------ a database that refuses, waits or counts


@contextmanager
def write_locked(settings, at_most: float, table: str = "subscribers") -> Iterator[None]:
    """Another connection holding the write lock, as a long write of the worker would: readers
    go on, writers wait (on PostgreSQL, writers of `table`; SQLite locks all of them). Held by
    a thread of its own for `at_most` seconds at most, so a request that would wait for ever
    fails the test rather than hang it."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with _lock(settings, table):
            held.set()
            release.wait(at_most)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10), "could not take the lock"
    try:
        yield
    finally:
        release.set()
        holder.join()


@contextmanager
def _lock(settings, table: str) -> Iterator[None]:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
    else:
        with engine_for(settings.database_url).connect() as connection:
            connection.execute(sqlalchemy.text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                connection.rollback()


@contextmanager
def counted(settings) -> Iterator[list[str]]:
    """The SQL statements sent meanwhile."""
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = engine_for(settings.database_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def refuse_rows(settings, table: str, column: str, value: str | int) -> None:
    """Make the database itself refuse to insert or update a row of `table` whose `column` is
    `value` (a trigger, on SQLite and PostgreSQL alike): a failure no check can foresee, of
    the kind a constraint raises (IntegrityError on both)."""
    engine = db.engine_for(settings.database_url)
    # A number as a number: SQLite compares a trigger's NEW.column to '5' as text.
    value = str(value) if isinstance(value, int) else f"'{value}'"
    if engine.dialect.name == "sqlite":
        statements = [
            f"CREATE TRIGGER refuse_{table}_{event} BEFORE {event} ON {table}"
            f" WHEN NEW.{column} = {value}"
            " BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            for event in ("INSERT", "UPDATE")
        ]
    else:
        statements = [
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF NEW.{column} = {value} THEN"
            " RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = 'check_violation';"
            " END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT OR UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_{table}()",
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


# ----------------------------------------------------------------------------------- rendering


WEB_URL = "https://digest.example.org/d/2026-11-27/abc"


HOSTILE_TITLE = "<script>alert(1)</script> </mj-text><mj-raw><b>raw</b></mj-raw> R&D"


FOUR_AUTHORS = ("Ada First", "Bo Second", "Cy Third", "Di Fourth")


def make_paper(number: int, title: str, **fields: object) -> PaperItem:
    arxiv_id = f"2611.{number:05d}"
    values: dict = {
        "arxiv_id": arxiv_id,
        "version": 1,
        "title": title,
        "authors": FOUR_AUTHORS,
        # arXiv's older format: wrapped at ~80 columns; a newline and an indent start a paragraph.
        "abstract": (
            "We study how models\nlearn things that matter for R&D, with 50% fewer\n"
            "parameters.\n  A second paragraph about $L^3$ losses."
        ),
        "published": datetime(2026, 11, 26, 17, 30, tzinfo=UTC),
        "abs_url": f"https://arxiv.org/abs/{arxiv_id}v1",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}v1",
        "primary_category": "cs.CV",
    }
    values.update(fields)
    return PaperItem(**values)


PANGU = make_paper(
    1,
    "PanGu-$π$: Enhancing Language Model Architectures via\n  Nonlinearity Compensation",
    code_url="https://github.com/example/pangu",
)


HOSTILE = make_paper(2, HOSTILE_TITLE, authors=("Ada First", "Bo Second"))


ALPHA = make_paper(3, r"$\alpha$-Net: \emph{Sharper} Diffusion", also_in=("MLLM",))


def readable_abstract(text: str) -> str:
    """An abstract as the feeds and the JSON export write it: its readable paragraphs, one
    blank line between them."""
    return "\n\n".join(readable_paragraphs(text))


CONTENT = DigestContent(
    date=date(2026, 11, 27),
    sections=(
        TopicSection("MLLM", "mllm", "Multimodal large language models", (PANGU, HOSTILE), 7),
        TopicSection("Diffusion", "diffusion", "Diffusion models & friends", (ALPHA,), 1),
    ),
    web_url=WEB_URL,
    base_url="https://digest.example.org",
    topic_names=("MLLM", "Diffusion", "NeRF"),
)


# --------------------------------------------------------------------------------- translation


def full_width_placeholders(text: str) -> str:
    """What some translators do to `[[3]]`: full-width brackets and digits, spaces inside."""
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    return re.sub(r"\[\[(\d+)\]\]", lambda m: f"［［ {m.group(1).translate(wide)} ］］", text)


def as_translators_write(text: str) -> str:
    """What translators do to references they can see: "arXiv" translated, full-width colons,
    spaces after a dot between digits and around slashes; placeholders made full-width."""
    text = re.sub(r"(?i)arxiv", "阿尔西夫", text).replace(":", "：")
    text = re.sub(r"(\d)\.(\d)", r"\1. \2", text).replace("/", " / ")
    return full_width_placeholders(text)


CITING = (
    "We extend arXiv:2312.17296v2 and hep-th/9901001 (doi:10.1145/3292500.3330701), as in"
    " 2401.01234 and arXiv：math.GT/0309136; the error falls from 12.5 to 3.14159 percent."
)


CITED = (
    "arXiv:2312.17296v2",
    "hep-th/9901001",
    "doi:10.1145/3292500.3330701",
    "2401.01234",
    "arXiv：math.GT/0309136",
)
