"""Building and sending the day's digest: open it, read its readers once, rank and translate
what their bodies show, mark it ready, give the readers due now their delivery rows (`serve`),
and deliver; `plan` says what a send would do without doing it.

Readers are read once, before the translation step: someone who subscribes while it runs (up to
NEWSLETTER_TRANSLATOR_BUDGET) is translated for when they are served; someone who leaves
meanwhile has their row skipped at send time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from newsletter import metrics, store
from newsletter.config import Settings
from newsletter.daily.serve import ServeReport, serve_due
from newsletter.db import session_scope
from newsletter.delivery.deliverer import DeliveryReport, deliver_all
from newsletter.delivery.events import mark_built
from newsletter.delivery.outgoing import Transport
from newsletter.delivery.transports import transport_from_settings
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import Readers, Segment, read_segments
from newsletter.digest.window import draft_digest, open_digest
from newsletter.models import utcnow
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


def prepare(
    settings: Settings, issue_date: date, now: datetime | None = None
) -> tuple[int, list[Segment]]:
    """Open the day's digest (ready as it is: nothing ranked or translated) and give every
    reader due `now` their window (`serve`): the digest, and the segments of its readers
    given it now."""
    with session_scope(settings) as session:
        digest = open_digest(session, issue_date, now or utcnow())
        mark_built(session, settings.base_url, digest.id, now or utcnow())
        digest_id = digest.id
    served = serve_due(settings, now)
    return digest_id, served.segments


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


def build(
    settings: Settings, issue_date: date, now: datetime | None = None
) -> tuple[int, TranslationReport]:
    """Build the day's digest (ranked and translated for every reader) and give the readers
    due now their delivery rows (`build_edition`); the digest's id."""
    edition, translation, _served = build_edition(settings, issue_date, now)
    return edition.digest_id, translation


def build_edition(
    settings: Settings, issue_date: date, now: datetime | None = None
) -> tuple[Edition, TranslationReport, ServeReport]:
    """`build_daily`, then every reader due `now` given their window (`serve.serve_due`):
    daily readers without an hour get the day's digest at once, the others at their hour."""
    edition, translation, readers = build_daily(settings, issue_date, now)
    served = serve_due(
        settings, now, editions={edition.digest_id: edition}, on=issue_date, streamed=readers
    )
    return edition, translation, served


def build_daily(
    settings: Settings, issue_date: date, now: datetime | None = None
) -> tuple[Edition, TranslationReport, Readers]:
    """The day's digest built for every reader: its window up to `now`, each reader's order
    of its papers (`ranking.step`, stored once), the translations what their bodies show,
    then marked ready, so readers are given it from then on; its edition as they get it, and
    its readers as streamed.

    Readers are read once, before the translation step (which also needs the previous
    digest's, noted on the same stream): the readers who would get the digest if all were due
    now. Someone who subscribes meanwhile is translated for when they are served.
    """
    now = now or utcnow()
    with session_scope(settings) as session:
        digest = open_digest(session, issue_date, now)
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
    with session_scope(settings) as session:
        mark_built(session, settings.base_url, edition.digest_id, now)
    metrics.record_digest_built()
    return edition, translation, readers


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
    edition, translation, served = build_edition(settings, issue_date)
    digest_ids = served.to_deliver(edition.digest_id)
    report = SendReport(issue_date=issue_date, translation=translation)
    with session_scope(settings) as session:
        report.already_sent = store.delivery_counts(session, edition.digest_id).get("sent", 0)
        if on_total is not None:
            on_total(sum(store.count_unfinished(session, d) for d in digest_ids))
    own_transport = transport is None
    transport = metrics.measured(transport or transport_from_settings(settings))
    try:
        for digest_id in digest_ids:  # the day's, then the spans due readers were given
            outcome = deliver_all(
                settings,
                digest_id,
                transport,
                edition=edition if digest_id == edition.digest_id else None,
                progress=progress,
                wait_for_retries=wait_for_retries,
            )
            metrics.record_delivery_report(outcome)
            report.add(outcome)
    finally:
        if own_transport:
            transport.close()
    with session_scope(settings) as session:
        report.unfinished = sum(store.count_unfinished(session, d) for d in digest_ids)
    return report
