"""What an operator's tools read: Prometheus metrics (the web app's guarded `/metrics`, the
worker's endpoint, several processes added up) counted by real sends through a local SMTP
server and real requests to the local arXiv and translator servers; and the logs, one line per
event, as text or JSON, secrets masked, from a real worker and a real gunicorn."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from newsletter import metrics
from newsletter.daily import send
from newsletter.delivery import deliverer
from newsletter.delivery.smtp import SMTPTransport
from newsletter.errors import FetchError, TranslationError
from newsletter.logs import JsonFormatter, TextFormatter, mask_secrets
from newsletter.sources.arxiv import ArxivSource
from newsletter.translate.base import HttpClient
from newsletter.web import create_app
from tests import arxiv_server
from tests.arxiv_server import ArxivServer, refused_url
from tests.atom import Entry, feed
from tests.helpers import (
    REPO,
    RedisServer,
    free_port,
    load_tasks,
    outbox_texts,
    query_of,
    set_env,
    stop,
    subscribe,
    wait_for,
    worker_command,
)
from tests.smtp_server import LocalSMTPServer
from tests.translation_servers import Reply as TranslatorReply
from tests.translation_servers import TranslatorServer

DAY = date(2026, 11, 27)
TOKEN = "metrics-admin-token-0123456789"
SECRET = "hunter2-not-for-logs"
REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


def value(name: str, **labels: str) -> float:
    """A sample of this process's metrics, 0 where there is none yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much samples grew while the block ran."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples

    def __enter__(self) -> Delta:
        self.before = [value(name, **labels) for name, labels in self.samples]
        return self

    def __exit__(self, *exc_info: object) -> None:
        after = [value(name, **labels) for name, labels in self.samples]
        self.grew = [a - b for a, b in zip(after, self.before, strict=True)]


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus page as {(sample name, sorted labels): value}; fails if it does not parse."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# ---------------------------------------------------------------- the web app's /metrics


@pytest.mark.parametrize("database_url", [None])
def test_metrics_open_like_the_admin_pages(settings, monkeypatch):
    config = set_env(monkeypatch, admin_token=TOKEN)
    client = create_app(config).test_client()

    assert client.get("/metrics", environ_base=REMOTE).status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get("/metrics", headers=wrong, environ_base=REMOTE).status_code == 403
    forwarded = {"X-Forwarded-For": "203.0.113.7"}  # a proxy on this machine: not local
    assert client.get("/metrics", headers=forwarded).status_code == 403

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for answer in (
        client.get("/metrics", headers=bearer, environ_base=REMOTE),
        client.get("/metrics"),  # from this machine
    ):
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        assert answer.headers["Cache-Control"] == "no-store"
        samples = scraped(answer.get_data(as_text=True))
        assert ("newsletter_messages_failed_total", (("reason", "refused"),)) in samples
        assert ("newsletter_arxiv_requests_total", (("outcome", "rate_limited"),)) in samples

    config = set_env(monkeypatch, admin_localhost="false")
    assert create_app(config).test_client().get("/metrics").status_code == 403


# ---------------------------------------------------------------- deliveries


SENT = ("newsletter_messages_sent_total", {})
REFUSED = ("newsletter_messages_failed_total", {"reason": "refused"})
DEFERRED = ("newsletter_messages_deferred_total", {"reason": "temporary"})
TIMED = ("newsletter_send_seconds_count", {})
BUILT = ("newsletter_digests_built_total", {})


def test_newsletter_send_counts_sent_refused_and_timed_messages(cli, two_subscribers, monkeypatch):
    with LocalSMTPServer(reject_recipients=["bo@example.org"]) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        with Delta(SENT, REFUSED, DEFERRED, TIMED, BUILT) as delta:
            cli("send", "--date", DAY.isoformat(), ok=False)

    assert delta.grew == [1, 1, 0, 2, 1]


def test_a_retried_message_counts_as_deferred_then_sent(cli, two_subscribers, monkeypatch):
    with LocalSMTPServer(tempfail_data=1) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url, smtp_retry_backoff="0.05")
        with Delta(SENT, REFUSED, DEFERRED, TIMED) as delta:
            cli("send", "--date", DAY.isoformat())

    assert delta.grew == [2, 0, 1, 3]


def test_a_delivery_report_is_counted_by_reason(cli, two_subscribers, monkeypatch):
    subscribe(cli, "用户@例子.广告", "SLAM")  # a non-ASCII local part: needs SMTPUTF8
    config = set_env(monkeypatch, smtp_max_attempts="1")
    digest_id, _translation = send.build(config, DAY)
    reasons = ("refused", "lost_connection", "smtputf8")
    failed = [("newsletter_messages_failed_total", {"reason": reason}) for reason in reasons]
    # The relay refuses Bo, drops the first message's connection during DATA, lacks SMTPUTF8.
    with LocalSMTPServer(reject_recipients=["bo@example.org"], drop_data=1) as smtp:
        transport = SMTPTransport(smtp.url, timeout=5)
        try:
            report = deliverer.deliver_all(config, digest_id, transport, wait_for_retries=False)
        finally:
            transport.close()
    assert (report.sent, report.failed) == (0, 3)  # Ada's message was the one dropped

    with Delta(SENT, *failed) as delta:
        metrics.record_delivery_report(report)

    assert delta.grew == [0, 1, 1, 1]


def test_failure_reasons_are_a_closed_set():
    cases = {
        "550 5.1.1 <bo@example.org>: Recipient address rejected": "refused",
        "451 4.3.0 Try again later": "temporary",
        "connection to 127.0.0.1:25 lost: [Errno 104] Connection reset by peer": "lost_connection",
        "not sent: the message could not be built: KeyError: 'x'": "not_built",
        "not sent: relay:25 does not offer SMTPUTF8 (RFC 6531), which …": "smtputf8",
        "the message has no From address": "other",
        "var/outbox/x.eml: [Errno 28] No space left on device": "other",
    }
    for detail, reason in cases.items():
        assert metrics.failure_reason(detail) == reason, detail
        assert reason in metrics.DELIVERY_REASONS
    other = ("newsletter_messages_failed_total", {"reason": "other"})
    with Delta(other) as delta:  # failures the report does not explain
        metrics.record_delivery_report(deliverer.DeliveryReport(failed=2))
    assert delta.grew == [2]
    with pytest.raises(ValueError):
        metrics.arxiv_request("something new")


# ---------------------------------------------------------------- arXiv and translators


def arxiv_outcome(outcome: str) -> tuple[str, dict[str, str]]:
    return ("newsletter_arxiv_requests_total", {"outcome": outcome})


@pytest.mark.parametrize(
    "reply, outcome",
    [
        (arxiv_server.Reply.text("Rate exceeded.", status=503), "rate_limited"),
        (arxiv_server.Reply.text("Too many", status=429), "rate_limited"),
        (arxiv_server.Reply.text("Bad query", status=400), "refused"),
        (arxiv_server.Reply.text("Internal error", status=500), "http_error"),
        (
            arxiv_server.Reply.text("<html><title>Oops</title></html>", 200, "text/html"),
            "bad_answer",
        ),
        (arxiv_server.Reply(body=feed([]), delay=2.0), "timeout"),
    ],
    ids=["rate exceeded", "429", "400", "500", "html", "slow"],
)
def test_each_arxiv_request_is_counted_by_outcome(reply, outcome):
    with ArxivServer(default=reply) as server:
        source = ArxivSource(server.url, delay=0, timeout=0.5, retries=0)
        with Delta(arxiv_outcome(outcome), arxiv_outcome("ok")) as delta:
            with pytest.raises(FetchError):
                source.probe("ti:anything")
    assert delta.grew == [1, 0]


def test_an_unreachable_arxiv_is_counted():
    source = ArxivSource(refused_url(), delay=0, timeout=2, retries=1, backoff=0.01)
    with Delta(arxiv_outcome("unreachable")) as delta:
        with pytest.raises(FetchError):
            source.probe("ti:anything")
    assert delta.grew == [2]  # the retry is a request too


def test_newsletter_fetch_counts_papers_topics_and_requests(cli, settings, monkeypatch):
    entries = [Entry("2611.00001", "One"), Entry("2611.00002", "Two")]
    samples = (
        ("newsletter_papers_fetched_total", {}),
        ("newsletter_papers_new_total", {}),
        ("newsletter_topic_fetches_total", {"outcome": "ok"}),
        ("newsletter_topic_fetches_total", {"outcome": "failed"}),
        arxiv_outcome("ok"),
        arxiv_outcome("http_error"),
    )
    with ArxivServer() as server:
        set_env(monkeypatch, arxiv_api_url=server.url, arxiv_backoff="0.01")
        cli("topics", "add", "Alpha", "--keyword", "alpha")
        cli("topics", "add", "Beta", "--keyword", "beta")
        server.route(arxiv_server.Reply(body=feed(entries)), search_query=query_of("Alpha"))
        server.route(arxiv_server.Reply.text("down", status=502), search_query=query_of("Beta"))
        with Delta(*samples) as delta:
            cli("fetch", ok=False)

    # Beta: the request and its one retry (NEWSLETTER_ARXIV_RETRIES=1 in tests) both failed.
    assert delta.grew == [2, 2, 1, 1, 1, 2]


def translator_outcome(outcome: str) -> tuple[str, dict[str, str]]:
    return ("newsletter_translator_requests_total", {"outcome": outcome})


def test_each_translator_request_is_counted_by_outcome():
    google = [("client", "gtx"), ("sl", "en"), ("tl", "de"), ("dt", "t"), ("q", "Hello.")]
    replies = {
        "rate_limited": TranslatorReply.status_only(429),
        "http_error": TranslatorReply.status_only(503),
        "refused": TranslatorReply.status_only(403),
        "bad_answer": TranslatorReply(200, b"<html>not json</html>", "text/html"),
        "timeout": TranslatorReply.slow(2.0),
    }
    with TranslatorServer("google") as server:
        client = HttpClient(timeout=0.5, retries=0)
        url = server.url + "/translate_a/single"
        for outcome, reply in replies.items():
            server.queue(reply)
            with Delta(translator_outcome(outcome), translator_outcome("ok")) as delta:
                with pytest.raises(TranslationError):
                    client.get_json(url, google)
            assert delta.grew == [1, 0], outcome
        with Delta(translator_outcome("ok")) as delta:
            client.get_json(url, google)
        assert delta.grew == [1]

    with Delta(translator_outcome("unreachable")) as delta:
        with pytest.raises(TranslationError):
            HttpClient(timeout=2, retries=0).get_json(refused_url(), google)
    assert delta.grew == [1]


# ---------------------------------------------------------------- several processes


@pytest.mark.parametrize("database_url", [None])
def test_in_multiprocess_mode_metrics_add_up_every_process(cli, settings, monkeypatch, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    with ArxivServer() as server:
        set_env(monkeypatch, arxiv_api_url=server.url)
        cli("topics", "add", "Alpha", "--keyword", "alpha")
        entries = [Entry("2611.00001", "One"), Entry("2611.00002", "Two")]
        server.route(arxiv_server.Reply(body=feed(entries)), search_query=query_of("Alpha"))
        environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
        for _ in range(2):  # two processes, one after the other
            subprocess.run(
                [*newsletter_command(), "fetch"], env=environment, check=True, capture_output=True
            )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))

    samples = scraped(create_app(settings).test_client().get("/metrics").get_data(as_text=True))

    # Two fetches of two papers by two processes; this process fetched nothing.
    assert samples[("newsletter_papers_fetched_total", ())] == 4
    assert samples[("newsletter_arxiv_requests_total", (("outcome", "ok"),))] == 2


def newsletter_command() -> list[str]:
    return worker_command()[:-1]  # the `newsletter` entry point, without "worker"


# ---------------------------------------------------------------- a real worker


def start_worker(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    stderr = tmp_path / "worker.err"
    with stderr.open("wb") as output:
        worker = subprocess.Popen(
            [*worker_command(), *args],
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    wait_for(lambda: "Huey consumer started" in stderr.read_text(), worker, stderr, "start")
    return worker, stderr


def test_the_worker_serves_its_metrics_on_loopback(arxiv, settings, monkeypatch, tmp_path):
    port = free_port()
    tasks = load_tasks()  # the worker's SQLite queue
    worker, log = start_worker(tmp_path, "--metrics-port", str(port))
    page = f"http://127.0.0.1:{port}/metrics"
    try:
        assert listening_address(port) == "127.0.0.1"  # NEWSLETTER_METRICS_HOST's default
        pending = ("newsletter_queue_depth", (("state", "pending"),))

        def idle() -> bool:
            # The every-minute webhook task can be waiting in the queue for a moment when the
            # worker starts on a minute's turn; the consumer takes it.
            return scraped(requests.get(page, timeout=5).text)[pending] == 0

        wait_for(idle, worker, log, "an empty queue")
        first = scraped(requests.get(page, timeout=5).text)
        assert first[("newsletter_queue_depth", (("state", "scheduled"),))] == 0

        tasks.daily_job()

        def done() -> bool:
            samples = scraped(requests.get(page, timeout=5).text)
            return samples.get(("newsletter_tasks_total", COMPLETE_DELIVER), 0) >= 1

        wait_for(done, worker, log, "a completed deliver task")
        samples = scraped(requests.get(page, timeout=5).text)
    finally:
        code = stop(worker)

    assert code == 0, log.read_text()
    assert samples[("newsletter_tasks_total", COMPLETE_DAILY)] == 1
    assert samples[("newsletter_papers_fetched_total", ())] == 4  # two topics, two papers each
    assert samples[("newsletter_arxiv_requests_total", (("outcome", "ok"),))] == 2
    assert samples[("newsletter_digests_built_total", ())] == 1
    assert samples[("newsletter_task_last_success_timestamp_seconds", (("task", "daily_job"),))]
    assert len(outbox_texts()) == 2


@pytest.mark.parametrize("database_url", [None])
def test_the_worker_s_metrics_answer_at_once_while_its_redis_is_down(
    settings, monkeypatch, tmp_path
):
    server = RedisServer(tmp_path).start()
    port = free_port()
    page = f"http://127.0.0.1:{port}/metrics"
    set_env(monkeypatch, redis_url=server.url, heartbeat_interval="0.5", recovery_interval="4")
    try:
        worker, log = start_worker(tmp_path, "--metrics-port", str(port))
        try:
            server.stop()
            part = f"Redis 127.0.0.1:{server.port} unreachable"
            wait_for(lambda: part in log.read_text(), worker, log, "the worker waiting for Redis")
            started = time.monotonic()
            page_while_down = requests.get(page, timeout=5)
            took = time.monotonic() - started
            server.start()
            wait_for(lambda: "is back after" in log.read_text(), worker, log, "Redis back")
            page_after = scraped(requests.get(page, timeout=5).text)
        finally:
            code = stop(worker)
    finally:
        server.stop()

    # The queue's depth is asked of Redis itself, not of the worker's storage that waits for it.
    assert took < 1, took
    assert page_while_down.status_code == 200
    samples = scraped(page_while_down.text)
    assert ("newsletter_queue_depth", (("state", "pending"),)) not in samples  # no sample
    assert ("newsletter_messages_sent_total", ()) in samples  # but a scrape
    assert page_after[("newsletter_queue_depth", (("state", "pending"),))] == 0
    assert code == 0, log.read_text()


@pytest.mark.parametrize("database_url", [None])
def test_a_worker_whose_metrics_port_is_taken_says_so_and_stops(settings, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        worker = subprocess.run(
            [*worker_command(), "--metrics-port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert worker.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in worker.stderr + worker.stdout


def listening_address(port: int) -> str | None:
    """The IPv4 address a socket listens on at `port`, as Linux's /proc/net/tcp says."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, hex_port = fields[1].split(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    return None


COMPLETE_DAILY = (("outcome", "complete"), ("task", "daily_job"))
COMPLETE_DELIVER = (("outcome", "complete"), ("task", "deliver"))


# ---------------------------------------------------------------- logs


def test_json_logs_are_one_object_a_line_with_the_traceback_in_it():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter([SECRET]))
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    try:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("sending to smtp://me:%s@relay:587 failed\nsecond line", SECRET)
    finally:
        logger.removeHandler(handler)

    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "tests.json"
    assert entry["message"] == "sending to smtp://me:********@relay:587 failed\nsecond line"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in entry["exception"]
    assert entry["time"].endswith("Z")
    assert SECRET not in line


def test_text_logs_are_one_line_a_record_too():
    record = logging.LogRecord(
        "tests.text", logging.WARNING, __file__, 1, "a\nforged line", (), None
    )
    line = TextFormatter().format(record)
    assert "\n" not in line and line.endswith("WARNING tests.text a\\nforged line")


def test_secrets_are_masked_wherever_they_appear():
    assert mask_secrets("redis://:pw123@redis:6379/0") == "redis://:********@redis:6379/0"
    assert mask_secrets("postgresql+psycopg://app:s3cr3t@db/x") == (
        "postgresql+psycopg://app:********@db/x"
    )
    assert mask_secrets('"GET /metrics?token=abc123&x=1 HTTP/1.1"') == (
        '"GET /metrics?token=********&x=1 HTTP/1.1"'
    )
    assert mask_secrets("http://host:8080/path") == "http://host:8080/path"  # a port, no password
    assert mask_secrets(f"key is {SECRET}", [SECRET]) == "key is ********"


TRICKY_URLS = [
    # The password holds what ends the host part for urlsplit (/ ? #), or an "@"; the user
    # is an email address.
    "postgresql+psycopg://app:Se/cr3t@db.example.org/app",
    "smtp://user:Se?cr3t@relay.example.org:587",
    "smtp://user:Se#cr3t@relay.example.org:587",
    "smtp://user:hunter@2024cr3t@relay.example.org:587",
    "smtp://me@example.org:Pw/cr3t@relay.example.org:587",
    "postgresql+psycopg://app:Pw@host:Word1cr3t@db.example.org/app",
]


@pytest.mark.parametrize("url", TRICKY_URLS)
def test_logs_mask_a_url_as_the_settings_are_shown(url):
    from newsletter.config import mask_url_password

    line = mask_secrets(f"connecting to {url} failed")

    assert "cr3t" not in line
    assert line == f"connecting to {mask_url_password(url)} failed"  # one masking, not two
    assert line.endswith(":********@relay.example.org:587 failed") or line.endswith(
        ":********@db.example.org/app failed"
    )


def test_a_known_secret_is_masked_whole_before_any_url_is_read():
    # Read out of the URL first, "hunter" alone was masked and "@2024cr3t" shown.
    secret = "hunter@2024cr3t"
    assert mask_secrets(f"smtp://user:{secret}@relay:587 and {secret}", [secret]) == (
        "smtp://user:********@relay:587 and ********"
    )


@pytest.mark.parametrize("database_url", [None])
def test_the_password_of_a_url_setting_is_masked_as_written_and_decoded(settings, monkeypatch):
    from newsletter.logs import secret_values

    config = set_env(monkeypatch, smtp_url="smtp://user:Pw%2Fcr3t%40x@relay.example.org:587")
    line = TextFormatter(secret_values(config)).format(
        logging.LogRecord("t", logging.ERROR, __file__, 1, "login Pw/cr3t@x refused", (), None)
    )
    assert line.endswith("login ******** refused")


def test_a_translator_s_failure_names_its_address_without_the_password():
    url = refused_url().replace("http://", "http://reader:Tr4ns/cr3t@") + "/translate?q=text"

    with pytest.raises(TranslationError) as raised:
        HttpClient(timeout=2, retries=0).get_json(url, [])

    message = str(raised.value)
    assert "cr3t" not in message and "?q=" not in message
    assert "http://reader:********@127.0.0.1:" in message


def test_the_worker_logs_json_lines_with_secrets_masked(arxiv, settings, monkeypatch, tmp_path):
    # arXiv fails for one topic, and says so with its address, which carries a password.
    arxiv.route_first(arxiv_server.Reply.text("down", status=500), search_query=query_of("Alpha"))
    with_password = arxiv.url.replace("http://", f"http://reader:{SECRET}@")
    set_env(monkeypatch, arxiv_api_url=with_password, log_format="json")
    tasks = load_tasks()
    worker, log = start_worker(tmp_path)
    try:
        tasks.daily_job()
        wait_for(lambda: "daily job queued its delivery" in log.read_text(), worker, log, "job")
    finally:
        code = stop(worker)

    text = log.read_text()
    assert code == 0, text
    entries = [json.loads(line) for line in text.splitlines()]  # every line, or it fails
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    errors = [entry["message"] for entry in entries if entry["level"] == "ERROR"]
    assert any("reader:********@127.0.0.1" in message for message in errors), errors
    assert SECRET not in text
    assert any(entry["logger"] == "huey.consumer" for entry in entries)


@pytest.mark.parametrize("database_url", [None])
def test_gunicorn_logs_json_lines_and_masks_the_token_in_its_access_log(
    settings, monkeypatch, tmp_path
):
    set_env(monkeypatch, log_format="json", admin_token=TOKEN)
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
        "--logger-class", "newsletter.logs.GunicornLogger", "--access-logfile", "-",
        "newsletter.web:create_app()",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up, or still booting
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        answer = requests.get(f"http://127.0.0.1:{port}/metrics?token={TOKEN}", timeout=10)
        assert answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)

    text = log.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert any(entry["logger"] == "gunicorn.error" for entry in entries)
    access = [entry["message"] for entry in entries if entry["logger"] == "gunicorn.access"]
    assert any("GET /metrics?token=******** HTTP/1.1" in line for line in access), access
    assert TOKEN not in text
