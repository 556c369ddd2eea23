"""Building and sending the day's digest: open it, read its readers once, translate what their
bodies show, give every reader with something new a delivery row, and deliver; `plan` says what
a send would do without doing it.

Readers are read once, before the translation step: someone who subscribes while it runs (up to
NEWSLETTER_TRANSLATOR_BUDGET) gets a row only when the day's digest is built again (`newsletter
send`); someone who leaves meanwhile has their row skipped at send time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from newsletter import metrics, store
from newsletter.batches import chunks
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.deliverer import DeliveryReport, deliver_all
from newsletter.delivery.outgoing import Transport
from newsletter.delivery.transports import transport_from_settings
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import Readers, Segment, read_segments, segments_of
from newsletter.digest.window import draft_digest, open_digest
from newsletter.message.compose import message_id_for
from newsletter.models import DeliveryStatus, utcnow
from newsletter.ranking.step import rank_digest
from newsletter.summarize.step import summarize_for_digest
from newsletter.translate.step import TranslationReport, translate_for_digest

Progress = Callable[[int], None]

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- build and send


@dataclass
class PlannedMessage:
    email: str
    language: str
    topics: tuple[str, ...]
    papers: int
    status: str


@dataclass(kw_only=True)
class SendReport(DeliveryReport):
    """What a send did (the deliveries' outcomes), and the day's digest around it."""

    issue_date: date
    unfinished: int = 0
    already_sent: int = 0
    planned: list[PlannedMessage] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    translation: TranslationReport = field(default_factory=TranslationReport)


INSERT_CHUNK = 1_000
"""Delivery rows written per INSERT when a digest is prepared."""


def prepare(
    settings: Settings,
    issue_date: date,
    *,
    edition: Edition | None = None,
    readers: Readers | None = None,
) -> tuple[int, list[Segment]]:
    """Open the day's digest and give every subscriber with something new a delivery row.

    `edition` and `readers` are the day's, when the caller has them already (`build`: the
    list is streamed once a send); otherwise they are read here. Rows are written segment
    after segment, so that a batch of claimed rows spans few segments, in chunks: memory holds
    a chunk of rows, not the list.
    """
    secret, domain, day = settings.secret(), settings.sender_domain, issue_date.isoformat()
    with session_scope(settings) as session:
        if edition is None:
            digest = open_digest(session, issue_date, utcnow())
            edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        if readers is None:
            readers = Readers.stream(session, issue_date, edition=edition)
        segments = segments_of(session, edition, readers)
        members = ((segment, sid) for segment in segments for sid in segment.subscriber_ids)
        for chunk in chunks(members, INSERT_CHUNK):
            public_ids = store.public_ids_without_delivery(
                session, edition.digest_id, [subscriber_id for _segment, subscriber_id in chunk]
            )
            now = utcnow()
            rows = [
                {
                    "digest_id": edition.digest_id,
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
        return edition.digest_id, segments


def plan(settings: Settings, issue_date: date | None = None) -> SendReport:
    """Who would get what, changing nothing (`newsletter send --dry-run`)."""
    issue_date = issue_date or settings.today()
    report = SendReport(issue_date=issue_date)
    with session_scope(settings) as session:
        digest = draft_digest(session, issue_date, utcnow())
        segments = read_segments(session, digest, EditionOptions.from_settings(settings))
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
    edition, translation = build_edition(settings, issue_date)
    return edition.digest_id, translation


def build_edition(settings: Settings, issue_date: date) -> tuple[Edition, TranslationReport]:
    """`build`, giving the day's edition as its readers get it (translations and notes).

    Readers with enough signal are ranked first (`ranking.step`: their order of the day's
    papers, stored once), so the translations cover what their own order shows. The list is
    streamed once: the segments it forms serve the translation step (which also
    needs the previous digest's, noted on the same stream) and then the delivery rows.
    """
    with session_scope(settings) as session:
        digest = open_digest(session, issue_date, utcnow())
        previous = store.latest_digest_before(session, issue_date)
        earlier = previous.issue_date if previous is not None else None
        edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        readers = Readers.stream(session, issue_date, earlier=earlier, edition=edition)
    rank_digest(settings, edition.digest_id)  # logs what it did
    with session_scope(settings) as session:
        edition.has_rankings(session)  # the translations then cover what their orders show
    translation = translate_for_digest(settings, edition, readers, previous)
    summarize_for_digest(settings, edition, readers)  # within its own budget; logs failures
    edition = edition.with_notes(translation.notes)
    prepare(settings, issue_date, edition=edition, readers=readers)
    metrics.record_digest_built()
    return edition, translation


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
    issue_date = issue_date or settings.today()
    edition, translation = build_edition(settings, issue_date)
    digest_id = edition.digest_id
    report = SendReport(issue_date=issue_date, translation=translation)
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
            edition=edition,
            progress=progress,
            wait_for_retries=wait_for_retries,
        )
    finally:
        if own_transport:
            transport.close()
    metrics.record_delivery_report(outcome)
    report.add(outcome)
    with session_scope(settings) as session:
        report.unfinished = store.count_unfinished(session, digest_id)
    return report
