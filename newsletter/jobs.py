"""The daily job's steps (fetch, build, send), composed from the layers above.

The CLI and the Huey tasks both call these; each step takes settings and plain values, opens
its own units of work, and is safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import TypeVar

from newsletter import metrics, store
from newsletter.arxiv_api import STOP_AFTER_KNOWN, ArxivSource, FetchedPaper, build_query
from newsletter.codelinks import link_label
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery import deliver_all, segments_for
from newsletter.digest import Segment, draft_digest, open_digest
from newsletter.errors import CodeLinkError, FetchError, InvalidInput
from newsletter.hfpapers import CodeLinkSource, HuggingFacePapers, RateLimited
from newsletter.mail import Transport, message_id_for, transport_from_settings
from newsletter.models import DeliveryStatus, utcnow
from newsletter.translations import (
    TranslationReport,
    translate_for_digest,
)

Progress = Callable[[int], None]
T = TypeVar("T")

log = logging.getLogger(__name__)


def today(settings: Settings | None = None) -> date:
    """The digest's date: today in NEWSLETTER_TIMEZONE (`Settings.today`)."""
    return (settings or get_settings()).today()


def nothing_to_do(settings: Settings) -> str | None:
    """Why the daily job would have nothing to do, saying what to do next; None when it has.

    Without a topic there is nothing to fetch, and without a reader following one nothing to
    send: a run then would only publish an empty digest and report "0 sent" as a success.
    """
    with session_scope(settings) as session:
        topics = store.list_topics(session)
        followers = store.topic_subscriber_counts(session)
    if not topics:
        return (
            "there are no topics yet: add one with `newsletter topics add NAME --keyword WORDS`,"
            " or load the examples with `newsletter init --examples`"
        )
    if not any(followers.values()):
        return (
            "no active subscriber follows a topic: add one with `newsletter subscribers add"
            " EMAIL --topic NAME`, or import a list with `newsletter subscribers import FILE`"
        )
    return None


# ---------------------------------------------------------------- fetch


@dataclass
class TopicFetch:
    topic: str
    fetched: int = 0
    new_papers: int = 0
    new_links: int = 0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Entries left out, each "<id>: <reason>" (not a paper we can read or store)."""


@dataclass
class FetchReport:
    topics: list[TopicFetch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(entry.error is None for entry in self.topics)

    @property
    def errors(self) -> list[str]:
        return [entry.error for entry in self.topics if entry.error]


def arxiv_source(settings: Settings) -> ArxivSource:
    return ArxivSource(
        settings.arxiv_api_url,
        delay=settings.arxiv_delay,
        timeout=settings.arxiv_timeout,
        retries=settings.arxiv_retries,
        backoff=settings.arxiv_backoff,
        page_size=settings.arxiv_page_size,
    )


def topic_query(topic) -> str:
    return build_query(topic.keywords, topic.categories, topic.excludes, topic.raw_query)


def fetch(
    settings: Settings, names: Iterable[str] = (), source: ArxivSource | None = None
) -> FetchReport:
    """Fetch every topic's (or the named topics') new papers; one topic's failure stops no other.

    Whatever a topic fetched before arXiv failed is stored all the same.
    """
    source = source or arxiv_source(settings)
    with session_scope(settings) as session:
        topics = store.get_topics(session, names) if names else store.list_topics(session)
        plan = [(t.id, t.name, topic_query(t), t.fetch_incomplete) for t in topics]
    report = FetchReport()
    for topic_id, name, query, catching_up in plan:
        entry = TopicFetch(name)
        report.topics.append(entry)
        with session_scope(settings) as session:
            known = store.linked_arxiv_ids(session, topic_id)
        papers: dict[str, FetchedPaper] = {}
        # After a fetch that failed half-way, paging must not stop at the papers it stored:
        # the ones it missed come after them.
        stop_after_known = None if catching_up else STOP_AFTER_KNOWN
        try:
            for paper in source.newest(
                query,
                settings.fetch_max_per_topic,
                is_known=known.__contains__,
                stop_after_known=stop_after_known,
                skipped=entry.skipped,
            ):
                # arXiv's paging can repeat an entry across pages: keep it once, and count
                # the repeat as known so that paging still stops.
                papers.setdefault(paper.arxiv_id, paper)
                known.add(paper.arxiv_id)
        except FetchError as error:
            entry.error = f"topic {name!r}: {error}"
        except Exception as error:  # a bug of ours on one topic's answer: not every topic's end
            log.debug("fetching topic %r failed", name, exc_info=True)
            entry.error = f"topic {name!r}: {type(error).__name__}: {error}"
        entry.fetched = len(papers)
        saved = save_fetched(settings, topic_id, list(papers.values()))
        entry.new_papers, entry.new_links = saved.new_papers, saved.new_links
        entry.skipped += saved.rejected
        # Stopped after storing some papers (or while catching up already): the next fetch
        # reads on past them. Stopped before any: nothing is behind a known paper.
        incomplete = entry.error is not None and (bool(papers) or catching_up)
        with session_scope(settings) as session:
            store.set_fetch_incomplete(session, topic_id, incomplete)
    metrics.record_fetch(report)
    return report


@dataclass
class SavedPapers:
    new_papers: int = 0
    new_links: int = 0
    rejected: list[str] = field(default_factory=list)
    """Papers the database refused, each "<id>: <reason>"."""


def save_fetched(settings: Settings, topic_id: int, papers: list[FetchedPaper]) -> SavedPapers:
    """Store papers once and link them to the topic, each in a savepoint of its own: one the
    database refuses is reported and the others are kept, alike on SQLite and PostgreSQL."""
    now = utcnow()
    saved = SavedPapers()
    with session_scope(settings) as session:
        for fetched in papers:
            values = asdict(fetched)
            values["authors"] = list(fetched.authors)
            values["categories"] = list(fetched.categories)
            values["code_urls"] = list(fetched.code_urls)
            try:
                created, linked = store.in_savepoint(
                    session, partial(_store_one, session, topic_id, values, now)
                )
            except InvalidInput as error:
                saved.rejected.append(f"{fetched.arxiv_id}: not stored: {error}")
                continue
            saved.new_papers += created
            saved.new_links += linked
    return saved


def _store_one(session, topic_id: int, values: dict, now: datetime) -> tuple[bool, bool]:
    paper, created = store.upsert_paper(session, values)
    return created, store.link_paper(session, topic_id, paper.id, now)


# ---------------------------------------------------------------- code links

CODE_RECHECK_INTERVAL = timedelta(hours=20)
"""Asked again after this long: a daily job whose start time drifts still asks once a day."""
CODE_CHECK_GIVE_UP_AFTER = 3
"""Consecutive failures after which Hugging Face is left alone until the next run."""


@dataclass
class CodeLinkReport:
    checked: int = 0
    found: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None
    """Why this run stopped asking early (rate limited, Hugging Face down), if it did."""

    def summary(self) -> str:
        if not (self.checked or self.errors):
            return ""
        text = f"Code links: {self.checked} papers asked on Hugging Face, {self.found} found"
        if self.errors:
            text += f", {len(self.errors)} not answered (asked again next run)"
        return text + "."


def check_code_links(
    settings: Settings, source: CodeLinkSource | None = None, now: datetime | None = None
) -> CodeLinkReport:
    """Ask Hugging Face for the code of papers that still have none, daily for a week.

    A paper is asked about on the run that first sees it (when its abstract and comment link
    no repository), then once a day for NEWSLETTER_CODE_RECHECK_DAYS, as authors often publish
    code days after the paper. A failure is reported and the paper asked again next run.
    """
    report = CodeLinkReport()
    if not settings.hf_code_links:
        return report
    source = source or HuggingFacePapers(settings.hf_api_url, timeout=settings.hf_timeout)
    now = now or utcnow()
    with session_scope(settings) as session:
        due = [
            (paper.id, paper.arxiv_id)
            for paper in store.papers_due_code_check(
                session,
                seen_since=now - timedelta(days=settings.code_recheck_days),
                checked_before=now - CODE_RECHECK_INTERVAL,
            )
            if not any(link_label(url) == "Code" for url in paper.code_urls)
        ]
    failures_in_a_row = 0
    for paper_id, arxiv_id in due:
        try:
            url = source.code_url(arxiv_id)
        except CodeLinkError as error:
            report.errors.append(f"{arxiv_id}: {error}")
            failures_in_a_row += 1
            if isinstance(error, RateLimited) or failures_in_a_row >= CODE_CHECK_GIVE_UP_AFTER:
                report.stopped = str(error)
                break
            continue
        failures_in_a_row = 0
        with session_scope(settings) as session:
            report.found += store.record_code_check(session, paper_id, url, now)
        report.checked += 1
    return report


# ---------------------------------------------------------------- build and send


@dataclass
class PlannedMessage:
    email: str
    language: str
    topics: tuple[str, ...]
    papers: int
    status: str


@dataclass
class SendReport:
    issue_date: date
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    bounced: int = 0
    recovered: int = 0
    """Found sent in the send journal (a sender stopped before writing them), marked sent."""
    unfinished: int = 0
    already_sent: int = 0
    planned: list[PlannedMessage] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    translation: TranslationReport = field(default_factory=TranslationReport)


def open_digest_id(settings: Settings, issue_date: date) -> int:
    """The id of the day's digest, stored on first call (its window fixed from then on)."""
    with session_scope(settings) as session:
        return open_digest(session, issue_date, utcnow()).id


INSERT_CHUNK = 1_000
"""Delivery rows written per INSERT when a digest is prepared."""


def prepare(
    settings: Settings, issue_date: date, notes: dict[tuple[str, str], str] | None = None
) -> tuple[int, list[Segment]]:
    """Open the day's digest and give every subscriber with something new a delivery row.

    Rows are written segment after segment, so that a batch of claimed rows spans few
    segments, in chunks: memory holds a chunk of rows, not the list. `notes` tell readers
    why an abstract is not translated (see `translations`).
    """
    secret, domain, day = settings.secret(), settings.sender_domain, issue_date.isoformat()
    with session_scope(settings) as session:
        digest = open_digest(session, issue_date, utcnow())
        segments = segments_for(session, settings, digest, notes=notes)
        members = ((segment, sid) for segment in segments for sid in segment.subscriber_ids)
        for chunk in _chunks(members, INSERT_CHUNK):
            public_ids = store.public_ids_without_delivery(
                session, digest.id, [subscriber_id for _segment, subscriber_id in chunk]
            )
            now = utcnow()
            rows = [
                {
                    "digest_id": digest.id,
                    "subscriber_id": subscriber_id,
                    "message_id": message_id_for(secret, day, public_ids[subscriber_id], domain),
                    "paper_count": segment.content.paper_count,
                    "status": DeliveryStatus.pending,
                    "created_at": now,
                }
                for segment, subscriber_id in chunk
                if subscriber_id in public_ids
            ]
            store.add_deliveries(session, rows)
        return digest.id, segments


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def plan(settings: Settings, issue_date: date | None = None) -> SendReport:
    """Who would get what, changing nothing (`newsletter send --dry-run`)."""
    issue_date = issue_date or today(settings)
    report = SendReport(issue_date)
    with session_scope(settings) as session:
        digest = draft_digest(session, issue_date, utcnow())
        segments = segments_for(session, settings, digest)
        deliveries = store.deliveries_of(session, digest.id) if digest.id else []
        status = {d.subscriber_id: d.status.value for d in deliveries}
        emails = store.subscriber_emails(
            session, (sid for segment in segments for sid in segment.subscriber_ids)
        )
        for segment in segments:
            for subscriber_id in segment.subscriber_ids:
                report.planned.append(
                    PlannedMessage(
                        emails[subscriber_id],
                        segment.language,
                        segment.content.topic_names,
                        segment.content.paper_count,
                        status.get(subscriber_id, "new"),
                    )
                )
    return report


def build(settings: Settings, issue_date: date) -> tuple[int, TranslationReport]:
    """Translate what the day's digest shows and give each of its readers a delivery row."""
    translation = translate_for_digest(settings, open_digest_id(settings, issue_date))
    digest_id, _segments = prepare(settings, issue_date, translation.notes)
    metrics.record_digest_built()
    return digest_id, translation


def send(
    settings: Settings,
    issue_date: date | None = None,
    transport: Transport | None = None,
    progress: Progress | None = None,
    wait_for_retries: bool = True,
    on_total: Callable[[int], None] | None = None,
) -> SendReport:
    """Build the day's digest and deliver every message not delivered yet.

    A rerun sends nothing twice: each (digest, subscriber) has one delivery row, and only rows
    not yet sent are sent (see `delivery`). Temporary failures are retried after their backoff
    (here, with `wait_for_retries`; otherwise by a later run or a worker).

    Before rendering, the abstracts the emails show are translated into the subscribers'
    languages (those not stored yet, within NEWSLETTER_TRANSLATOR_BUDGET); what fails goes
    out in English with a note, and is translated on the next run.
    """
    issue_date = issue_date or today(settings)
    digest_id, translation = build(settings, issue_date)
    report = SendReport(issue_date, translation=translation)
    with session_scope(settings) as session:
        report.already_sent = store.delivery_counts(session, digest_id).get("sent", 0)
        if on_total is not None:
            on_total(store.count_unfinished(session, digest_id))
    own_transport = transport is None
    transport = metrics.measured(transport or transport_from_settings(settings))
    try:
        outcome = deliver_all(
            settings,
            digest_id,
            transport,
            notes=translation.notes,
            progress=progress,
            wait_for_retries=wait_for_retries,
        )
    finally:
        if own_transport:
            transport.close()
    metrics.record_delivery_report(outcome)
    for name in ("sent", "failed", "deferred", "skipped", "bounced", "recovered"):
        setattr(report, name, getattr(outcome, name))
    report.failures = outcome.failures
    with session_scope(settings) as session:
        report.unfinished = store.count_unfinished(session, digest_id)
    return report


# ---------------------------------------------------------------- the whole job


@dataclass
class RunReport:
    fetch: FetchReport
    send: SendReport
    code_links: CodeLinkReport = field(default_factory=CodeLinkReport)


def run_daily(settings: Settings, transport: Transport | None = None) -> RunReport:
    """Fetch, ask for code links, build, send: the daily job. Failures stop no other step."""
    fetched = fetch(settings)
    code_links = check_code_links(settings)
    return RunReport(fetched, send(settings, transport=transport), code_links)
