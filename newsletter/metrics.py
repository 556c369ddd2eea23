"""Prometheus metrics: what the daily job, the deliveries and the services outside did.

A leaf module (it imports nothing of this project), so that every layer may count what it
does with a one-line call, and the layers that compose (`daily`, `worker`, the worker command,
the web app) hand it reports and expose what it holds.

Labels come from small closed sets (an outcome, a reason, a task's name), never an address or
a server's text: a label value is a time series of its own, kept for ever by Prometheus.

Each process counts on its own: the worker's endpoint (`newsletter worker --metrics-port`)
shows what that worker did, the web app's `/metrics` what the gunicorn worker process that
answers did (little: the web app fetches and sends no digest), and a `newsletter send` run's
counts end with it. With
PROMETHEUS_MULTIPROC_DIR set (before the processes start, to one empty folder they share),
prometheus-client's multiprocess mode has every process write its values there, and a scrape
of any of them adds up all: gunicorn's workers, the worker, `newsletter` commands.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "ARXIV_OUTCOMES",
    "DELIVERY_REASONS",
    "TRANSLATOR_OUTCOMES",
    "arxiv_request",
    "exposition_registry",
    "failure_reason",
    "http_outcome",
    "measured",
    "record_delivery_report",
    "record_digest_built",
    "record_fetch",
    "serve",
    "translator_request",
    "watch_queue",
    "watch_tasks",
]

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_OUTCOMES = (
    "ok",
    "rate_limited",  # 429, or arXiv's "Rate exceeded."
    "refused",  # another 4xx, or arXiv's error entry for a bad query
    "http_error",  # 5xx and any other answer that is not a success
    "timeout",
    "unreachable",  # no connection (refused, DNS, TLS)
    "bad_answer",  # a success, but not the feed or the JSON the protocol promises
)
ARXIV_OUTCOMES = TRANSLATOR_OUTCOMES = REQUEST_OUTCOMES
DELIVERY_REASONS = ("refused", "temporary", "lost_connection", "not_built", "smtputf8", "other")
"""Why a message failed or waits for a retry: a 5xx reply, a 4xx reply, the connection lost,
our message could not be made, the relay lacks SMTPUTF8 for a non-ASCII address, or else."""

if os.environ.get(MULTIPROCESS_DIR):
    # Each metric below opens its file there at once: a folder not made yet would stop every
    # process at import with a bare FileNotFoundError.
    os.makedirs(os.environ[MULTIPROCESS_DIR], exist_ok=True)

PAPERS_FETCHED = Counter(
    "newsletter_papers_fetched", "Papers arXiv returned for the topics' queries."
)
PAPERS_NEW = Counter("newsletter_papers_new", "Papers stored for the first time.")
TOPIC_FETCHES = Counter(
    "newsletter_topic_fetches", "Topics fetched, by outcome (ok or failed).", ["outcome"]
)
DIGESTS_BUILT = Counter(
    "newsletter_digests_built", "Digests built: translated and given their delivery rows."
)
MESSAGES_SENT = Counter("newsletter_messages_sent", "Messages the relay (or the outbox) took.")
MESSAGES_FAILED = Counter(
    "newsletter_messages_failed", "Messages given up on, by reason.", ["reason"]
)
MESSAGES_DEFERRED = Counter(
    "newsletter_messages_deferred", "Messages that wait for a retry, by reason.", ["reason"]
)
MESSAGES_SKIPPED = Counter(
    "newsletter_messages_skipped", "Deliveries not sent: the subscriber left or paused."
)
SEND_SECONDS = Histogram(
    "newsletter_send_seconds",
    "Seconds one message took to hand to the relay or write to the outbox (pacing excluded).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ARXIV_REQUESTS = Counter(
    "newsletter_arxiv_requests", "Requests to arXiv's API (retries too), by outcome.", ["outcome"]
)
TRANSLATOR_REQUESTS = Counter(
    "newsletter_translator_requests", "Requests to the translator, by outcome.", ["outcome"]
)
TASKS = Counter(
    "newsletter_tasks", "Queue tasks that ran in this worker, by task and outcome.",
    ["task", "outcome"],
)  # fmt: skip
TASK_LAST_SUCCESS = Gauge(
    "newsletter_task_last_success_timestamp_seconds",
    "When a task last completed (Unix time), by task.",
    ["task"],
    multiprocess_mode="max",
)

# Every series of a closed set exists from the start, at 0: a rate() over a series that
# appears only with its first failure misses that failure.
for _outcome in ARXIV_OUTCOMES:
    ARXIV_REQUESTS.labels(_outcome)
for _outcome in TRANSLATOR_OUTCOMES:
    TRANSLATOR_REQUESTS.labels(_outcome)
for _reason in DELIVERY_REASONS:
    MESSAGES_FAILED.labels(_reason)
    MESSAGES_DEFERRED.labels(_reason)
for _outcome in ("ok", "failed"):
    TOPIC_FETCHES.labels(_outcome)


# ---------------------------------------------------------------- outside services


def arxiv_request(outcome: str) -> None:
    """Count one request to arXiv; `outcome` is one of ARXIV_OUTCOMES."""
    ARXIV_REQUESTS.labels(_closed(outcome, ARXIV_OUTCOMES)).inc()


def translator_request(outcome: str) -> None:
    """Count one request to the translator; `outcome` is one of TRANSLATOR_OUTCOMES."""
    TRANSLATOR_REQUESTS.labels(_closed(outcome, TRANSLATOR_OUTCOMES)).inc()


def http_outcome(status: int) -> str:
    """The outcome label of an HTTP answer that is not a success."""
    if status == 429:
        return "rate_limited"
    return "refused" if 400 <= status < 500 else "http_error"


def _closed(value: str, allowed: tuple[str, ...]) -> str:
    # A typo in a caller must not open a new series; it shows as a test failure instead.
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {allowed}")
    return value


# ---------------------------------------------------------------- the daily job's reports


class _TopicCounts(Protocol):
    fetched: int
    new_papers: int
    error: str | None


class _FetchCounts(Protocol):
    @property
    def topics(self) -> Sequence[_TopicCounts]: ...


class _DeliveryCounts(Protocol):
    sent: int
    failed: int
    deferred: int
    skipped: int
    failures: list[str]


def record_fetch(report: _FetchCounts) -> None:
    """Count a fetch (`daily.fetch.FetchReport`): papers returned, papers new, topics by outcome."""
    for topic in report.topics:
        PAPERS_FETCHED.inc(topic.fetched)
        PAPERS_NEW.inc(topic.new_papers)
        TOPIC_FETCHES.labels("ok" if topic.error is None else "failed").inc()


def record_digest_built() -> None:
    DIGESTS_BUILT.inc()


def record_delivery_report(report: _DeliveryCounts) -> None:
    """Count what a `delivery.DeliveryReport` says: sent, skipped, failed by reason (read from
    its failures, "<address>: <detail>"), deferred.

    A report tells no reason for a deferral; a deferral is a temporary failure by definition
    (a 4xx reply or a lost connection), counted as `temporary`.
    """
    MESSAGES_SENT.inc(report.sent)
    MESSAGES_SKIPPED.inc(report.skipped)
    MESSAGES_DEFERRED.labels("temporary").inc(report.deferred)
    explained = 0
    for failure in report.failures[: report.failed]:
        MESSAGES_FAILED.labels(failure_reason(_detail_of(failure))).inc()
        explained += 1
    if report.failed > explained:
        MESSAGES_FAILED.labels("other").inc(report.failed - explained)


_REPLY_CODE = re.compile(r"(?P<code>[245])\d\d\b")


def failure_reason(detail: str) -> str:
    """The reason label (one of DELIVERY_REASONS) for a failed send's detail, as `delivery`'s
    transports and outcomes word it: a server's reply ("550 5.1.1 …") or a sentence of ours."""
    if "could not be built" in detail:
        return "not_built"
    if "SMTPUTF8" in detail:
        return "smtputf8"
    if detail.startswith("connection to ") and " lost" in detail:
        return "lost_connection"
    code = _REPLY_CODE.match(detail)
    if code is not None:
        return {"5": "refused", "4": "temporary"}.get(code["code"], "other")
    return "other"


def _detail_of(failure: str) -> str:
    # The address comes first; an address holds no ": " unless quoted, and the detail may.
    address, separator, detail = failure.partition(": ")
    return detail if separator and "@" in address else failure


# ---------------------------------------------------------------- sending


class _Transport(Protocol):
    def send(self, messages: Iterable[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


class MeasuredTransport:
    """Another transport, each message's send timed into `newsletter_send_seconds`: from the
    moment the transport takes the message to the moment it says what became of it."""

    def __init__(self, inner: _Transport) -> None:
        self.inner = inner

    def send(self, messages: Iterable[Any]) -> Iterator[Any]:
        # Results come in the order messages were taken (one at a time, or pipelined).
        taken: deque[float] = deque()
        for result in self.inner.send(_noting_when_taken(messages, taken)):
            if taken:
                SEND_SECONDS.observe(time.monotonic() - taken.popleft())
            yield result

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _noting_when_taken(messages: Iterable[Any], taken: deque[float]) -> Iterator[Any]:
    for message in messages:
        taken.append(time.monotonic())
        yield message


def measured(transport: _Transport) -> _Transport:
    """`transport` with each send timed.

    A paced transport (NEWSLETTER_SEND_RATE: `mail.PacedTransport`, holding the transport it
    paces as `inner`) is timed inside its pacing, so that the histogram shows how fast the
    relay takes a message, not how long we waited for our turn.
    """
    if isinstance(transport, MeasuredTransport):
        return transport
    if hasattr(transport, "pace") and hasattr(transport, "inner"):
        transport.inner = measured(transport.inner)
        return transport
    return MeasuredTransport(transport)


# ---------------------------------------------------------------- the worker


def watch_tasks(huey: Any) -> None:
    """Count the tasks `huey`'s consumer runs, by task and outcome, through Huey's signals;
    a completed task also sets its last-success time (the daily job's is the one to watch)."""
    from huey import signals

    outcomes = {
        signals.SIGNAL_COMPLETE: "complete",
        signals.SIGNAL_ERROR: "error",
        signals.SIGNAL_LOCKED: "locked",
        signals.SIGNAL_INTERRUPTED: "interrupted",
    }

    @huey.signal(*outcomes)
    def _count(signal: str, task: Any, *_args: Any) -> None:
        TASKS.labels(task.name, outcomes[signal]).inc()
        if signal == signals.SIGNAL_COMPLETE:
            TASK_LAST_SUCCESS.labels(task.name).set_to_current_time()


class _QueueDepth(Collector):
    """`newsletter_queue_depth{state}`, asked of the queue at each scrape."""

    def __init__(self, depth: Callable[[], Mapping[str, int]]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "newsletter_queue_depth",
            "Tasks waiting in the queue: pending (to run now) and scheduled (later).",
            labels=["state"],
        )
        try:
            depth = self.depth()
        except Exception:  # the queue's server is down: no sample, rather than no scrape
            log.warning("the queue's depth could not be read", exc_info=True)
            return
        for state, count in depth.items():
            family.add_metric([state], count)
        yield family


def watch_queue(depth: Callable[[], Mapping[str, int]], registry: CollectorRegistry) -> None:
    """Report `depth()` (state → tasks, as `tasks.queue_depth` gives) at each scrape."""
    registry.register(_QueueDepth(depth))


# ---------------------------------------------------------------- exposing


def exposition_registry() -> CollectorRegistry:
    """What a scrape shows: this process's metrics, or in multiprocess mode the sum of every
    process's (a fresh registry each time, as prometheus-client's documentation asks)."""
    path = os.environ.get(MULTIPROCESS_DIR)
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


def serve(port: int, host: str, registry: CollectorRegistry) -> None:
    """Answer scrapes of `registry` on host:port from a thread of this process."""
    start_http_server(port, addr=host, registry=registry)
