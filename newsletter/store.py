"""Every query and write, named. Callers pass a Session (see `db.session_scope`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, TypeVar

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from newsletter.delivery.bounces import Bounce, classify
from newsletter.errors import InvalidInput, UnknownSubscriber, UnknownTopic
from newsletter.intake.subscribers import SubscriberSpec, email_key
from newsletter.intake.topics import TopicSpec, slugify, topic_key
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    Event,
    MailFormat,
    Paper,
    ReceivedMail,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    TopicPaper,
    Translation,
    utcnow,
)

# ---------------------------------------------------------------- topics


def list_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))


def get_topic(session: Session, name: str) -> Topic:
    """The topic of that name (any case or spacing); the error lists the names that exist."""
    topic = session.scalar(select(Topic).where(Topic.name_key == topic_key(name)))
    if topic is None:
        raise UnknownTopic(f"unknown topic {name!r}; known topics: {known_topics_text(session)}")
    return topic


def known_topics_text(session: Session) -> str:
    names = [topic.name for topic in list_topics(session)]
    return ", ".join(names) if names else "(none yet: add one with `newsletter topics add`)"


def get_topics(session: Session, names: Iterable[str]) -> list[Topic]:
    """The named topics, each once (`MLLM` and `mllm` are one), in the order first named."""
    topics = {topic.id: topic for topic in (get_topic(session, name) for name in names)}
    return list(topics.values())


def add_topic(session: Session, spec: TopicSpec) -> Topic:
    if session.scalar(select(Topic.id).where(Topic.name_key == topic_key(spec.name))):
        raise InvalidInput(f"topic {spec.name!r} exists already (change it with `topics edit`)")
    position = (session.scalar(select(func.max(Topic.position))) or 0) + 1
    topic = Topic(name=spec.name, name_key=topic_key(spec.name), position=position)
    topic.slug = _free_slug(session, slugify(spec.name))
    apply_topic_spec(topic, spec)
    session.add(topic)
    session.flush()
    return topic


def _free_slug(session: Session, slug: str) -> str:
    candidate, number = slug, 1
    while session.scalar(select(Topic.id).where(Topic.slug == candidate)):
        number += 1
        candidate = f"{slug}-{number}"
    return candidate


def apply_topic_spec(topic: Topic, spec: TopicSpec) -> bool:
    """Write a spec's matching rules onto a topic; True when anything changed."""
    values = {
        "description": spec.description,
        "keywords": list(spec.keywords),
        "categories": list(spec.categories),
        "excludes": list(spec.excludes),
        "raw_query": spec.raw_query,
    }
    changed = any(getattr(topic, key) != value for key, value in values.items())
    for key, value in values.items():
        setattr(topic, key, value)
    return changed


def upsert_topic(session: Session, spec: TopicSpec) -> str:
    """Add the topic or bring it in line with the spec: "added", "updated" or "unchanged"."""
    existing = session.scalar(select(Topic).where(Topic.name_key == topic_key(spec.name)))
    if existing is None:
        add_topic(session, spec)
        return "added"
    return "updated" if apply_topic_spec(existing, spec) else "unchanged"


def remove_topic(session: Session, topic: Topic) -> None:
    session.delete(topic)


def topic_subscriber_counts(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(SubscriberTopic.topic_id, func.count())
        .join(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.active)
        .group_by(SubscriberTopic.topic_id)
    )
    return {key: count for key, count in rows}


def topic_paper_counts(session: Session) -> dict[int, int]:
    rows = session.execute(select(TopicPaper.topic_id, func.count()).group_by(TopicPaper.topic_id))
    return {key: count for key, count in rows}


# ---------------------------------------------------------------- papers


def linked_arxiv_ids(session: Session, topic_id: int) -> set[str]:
    """The arXiv ids a topic has matched so far (what a fetch stops at)."""
    rows = session.scalars(
        select(Paper.arxiv_id).join(TopicPaper).where(TopicPaper.topic_id == topic_id)
    )
    return set(rows)


def set_fetch_incomplete(session: Session, topic_id: int, incomplete: bool) -> None:
    """Remember whether a topic's last fetch stopped on an error (see `Topic.fetch_incomplete`)."""
    session.execute(update(Topic).where(Topic.id == topic_id).values(fetch_incomplete=incomplete))


def upsert_paper(session: Session, values: dict) -> tuple[Paper, bool]:
    """Store a paper once per arXiv id; a newer version replaces the stored text."""
    paper = session.scalar(select(Paper).where(Paper.arxiv_id == values["arxiv_id"]))
    if paper is None:
        paper = Paper(**values)
        session.add(paper)
        session.flush()
        return paper, True
    if values["version"] > paper.version:
        if (values["title"], values["abstract"]) != (paper.title, paper.abstract):
            # A translation is of one text: a new version's text is translated afresh.
            session.execute(delete(Translation).where(Translation.paper_id == paper.id))
        # Code found earlier (on Hugging Face, or in an older version's text) stays.
        earlier_code = [url for url in paper.code_urls if url not in values["code_urls"]]
        for key, value in values.items():
            setattr(paper, key, value)
        paper.code_urls = list(values["code_urls"]) + earlier_code
    return paper, False


def link_paper(session: Session, topic_id: int, paper_id: int, at: datetime) -> bool:
    """Record that a topic matches a paper; False when it was known already."""
    if session.get(TopicPaper, (topic_id, paper_id)) is not None:
        return False
    session.add(TopicPaper(topic_id=topic_id, paper_id=paper_id, linked_at=at))
    return True


def papers_linked_between(
    session: Session, topic_id: int, start: datetime | None, end: datetime
) -> list[Paper]:
    """A topic's papers first matched in (start, end], newest submission first."""
    query = (
        select(Paper)
        .join(TopicPaper)
        .where(TopicPaper.topic_id == topic_id, TopicPaper.linked_at <= end)
        .order_by(Paper.published.desc(), Paper.arxiv_id.desc())
    )
    if start is not None:
        query = query.where(TopicPaper.linked_at > start)
    return list(session.scalars(query))


def papers_of_topics_between(
    session: Session, topic_ids: Iterable[int], start: datetime | None, end: datetime
) -> list[tuple[int, Paper]]:
    """(topic id, paper) of these topics' papers first matched in (start, end], newest
    submission first: `papers_linked_between` for many topics in one query."""
    ids = sorted(set(topic_ids))
    if not ids:
        return []
    query = (
        select(TopicPaper.topic_id, Paper)
        .join(Paper, Paper.id == TopicPaper.paper_id)
        .where(TopicPaper.topic_id.in_(ids), TopicPaper.linked_at <= end)
        .order_by(Paper.published.desc(), Paper.arxiv_id.desc())
    )
    if start is not None:
        query = query.where(TopicPaper.linked_at > start)
    return [(topic_id, paper) for topic_id, paper in session.execute(query)]


def papers_due_code_check(
    session: Session, seen_since: datetime, checked_before: datetime
) -> list[Paper]:
    """Papers first seen since `seen_since` and not asked about since `checked_before`.

    The caller keeps those that still have no repository link (a JSON column, read in Python).
    """
    query = (
        select(Paper)
        .where(
            Paper.first_seen_at >= seen_since,
            or_(Paper.code_checked_at.is_(None), Paper.code_checked_at < checked_before),
        )
        .order_by(Paper.first_seen_at.desc(), Paper.id)
    )
    return list(session.scalars(query))


def record_code_check(session: Session, paper_id: int, code_url: str | None, at: datetime) -> bool:
    """Note that a paper's code was asked about at `at`; a repository found goes first.

    True when the link is new to the paper.
    """
    paper = session.get(Paper, paper_id)
    paper.code_checked_at = at
    if code_url is None or code_url in paper.code_urls:
        return False
    paper.code_urls = [code_url, *paper.code_urls]  # a new list: JSON columns track assignment
    return True


def count_papers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Paper)) or 0


# ---------------------------------------------------------------- subscribers


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key(email)))


def get_subscriber(session: Session, email: str) -> Subscriber:
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise UnknownSubscriber(f"no subscriber with the address {email!r}")
    return subscriber


def subscriber_by_public_id(session: Session, public_id: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.public_id == public_id))


def add_subscriber(session: Session, spec: SubscriberSpec, source: str) -> Subscriber:
    if find_subscriber(session, spec.email) is not None:
        raise InvalidInput(
            f"{spec.email} is subscribed already (change it with `subscribers edit`)"
        )
    subscriber = Subscriber(
        email=spec.email,
        email_key=email_key(spec.email),
        name=spec.name,
        language=spec.language,
        format=spec.format or MailFormat.html,
        topics=get_topics(session, spec.topics),
    )
    session.add(subscriber)
    session.flush()
    log_event(
        session, subscriber, "subscribed", source, ", ".join(t.name for t in subscriber.topics)
    )
    return subscriber


def list_subscribers(
    session: Session, topic: Topic | None = None, status: SubscriberStatus | None = None
) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if topic is not None:
        query = query.join(SubscriberTopic).where(SubscriberTopic.topic_id == topic.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    return list(session.scalars(query))


STREAM_CHUNK = 2_000
"""Rows fetched at a time when a whole list is read (a server-side cursor on PostgreSQL)."""
IN_LIST_LIMIT = 5_000
"""Most values bound in one statement's IN list (SQLite allows 32,766 parameters in all)."""


def subscriber_topic_rows(session: Session, on: date) -> Iterator[tuple[int, str, int]]:
    """(subscriber id, language, topic id) of each active subscriber not paused on `on`, a row
    per topic, by subscriber then in topic order: the whole list streamed, never loaded."""
    query = (
        select(Subscriber.id, Subscriber.language, SubscriberTopic.topic_id)
        .join(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .join(Topic, Topic.id == SubscriberTopic.topic_id)
        .where(
            Subscriber.status == SubscriberStatus.active,
            or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= on),
        )
        .order_by(Subscriber.id, Topic.position, Topic.id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    yield from session.execute(query)  # rows unpack as tuples


def subscriber_emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """The addresses of these subscribers, by id."""
    wanted = sorted(set(ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), IN_LIST_LIMIT):
        chunk = wanted[start : start + IN_LIST_LIMIT]
        rows = session.execute(
            select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_(chunk))
        )
        found.update((subscriber_id, email) for subscriber_id, email in rows)
    return found


def set_status(
    session: Session,
    subscriber: Subscriber,
    status: SubscriberStatus,
    source: str,
    detail: str = "",
) -> bool:
    """Change a subscriber's status and log it; False when it was that already."""
    if subscriber.status == status:
        return False
    subscriber.status = status
    if status in (SubscriberStatus.unsubscribed, SubscriberStatus.bounced):
        # A confirmation link sent before must not bring the address back: it no longer
        # matches (see `confirmation_matches`), and a new request may send one at once.
        subscriber.confirmation_sent_at = None
    log_event(session, subscriber, status.value, source, detail)
    return True


def purge_subscriber(session: Session, subscriber: Subscriber) -> None:
    session.delete(subscriber)


def log_event(
    session: Session, subscriber: Subscriber, kind: str, source: str, detail: str = ""
) -> None:
    session.add(Event(subscriber_id=subscriber.id, kind=kind, source=source, detail=detail))


def events_of(session: Session, subscriber: Subscriber) -> list[Event]:
    return list(
        session.scalars(
            select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.id)
        )
    )


# ---------------------------------------------------------------- subscribing on the web


def topics_by_ids(session: Session, ids: Iterable[int]) -> list[Topic]:
    """The topics with these ids that exist, in their display order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = select(Topic).where(Topic.id.in_(wanted)).order_by(Topic.position, Topic.id)
    return list(session.scalars(query))


def topic_by_slug(session: Session, slug: str) -> Topic | None:
    return session.scalar(select(Topic).where(Topic.slug == slug))


def request_subscription(
    session: Session, email: str, topics: list[Topic], language: str
) -> Subscriber:
    """The subscriber a web request to subscribe is for, logged; a new address is `pending`.

    Nothing about a known address changes here: its topics and language change only when the
    confirmation link is used, so a stranger's request cannot alter someone's subscription.
    """
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        try:
            with session.begin_nested():
                subscriber = Subscriber(
                    email=email,
                    email_key=email_key(email),
                    language=language,
                    topics=topics,
                    status=SubscriberStatus.pending,
                )
                session.add(subscriber)
        except IntegrityError:  # the same address, asked for twice at the same moment
            subscriber = get_subscriber(session, email)
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    log_event(session, subscriber, "requested", "web", detail)
    return subscriber


def claim_confirmation(
    session: Session, subscriber: Subscriber, now: datetime, window: timedelta
) -> bool:
    """Take the right to send a confirmation now: False when one went out within `window`.

    One conditional UPDATE, so two requests at the same moment cannot both send.
    """
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at <= now - window,
            ),
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(subscriber)
    return result.rowcount == 1


def release_confirmation(session: Session, subscriber: Subscriber, sent_at: datetime) -> None:
    """The confirmation could not be sent: let the next request try again at once."""
    if subscriber.confirmation_sent_at == sent_at:
        subscriber.confirmation_sent_at = None


def confirmation_matches(subscriber: Subscriber, sent_at: int) -> bool:
    """Whether a confirmation link (sent at `sent_at`, Unix ms) is the subscriber's latest.

    An older link, or any link after the address left the list, no longer counts.
    """
    latest = subscriber.confirmation_sent_at
    return latest is not None and milliseconds(latest) == sent_at


def milliseconds(moment: datetime) -> int:
    """Unix time in whole milliseconds (what a link carries of a moment), exactly."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def confirm_subscription(
    session: Session, subscriber: Subscriber, topics: list[Topic], language: str
) -> None:
    """Make a web subscription active with the confirmed topics and language; logged."""
    subscriber.topics, subscriber.language = topics, language
    subscriber.confirmed_at = utcnow()
    if subscriber.status != SubscriberStatus.active:
        subscriber.status = SubscriberStatus.active
        subscriber.paused_until = None
        subscriber.bounce_count = 0
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    log_event(session, subscriber, "confirmed", "web", detail)


def change_preferences(
    session: Session,
    subscriber: Subscriber,
    topics: list[Topic],
    language: str,
    source: str,
    mail_format: MailFormat | None = None,
) -> bool:
    """New topics, language and (unless None) mail format, logged as a change; False when
    nothing changed. The detail names the format only when it changes."""
    if mail_format is None:
        mail_format = subscriber.format
    before = ([topic.id for topic in subscriber.topics], subscriber.language, subscriber.format)
    if before == ([topic.id for topic in topics], language, mail_format):
        return False
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    if mail_format != subscriber.format:
        detail += f"; format {mail_format}"
    subscriber.topics, subscriber.language = topics, language
    subscriber.format = mail_format
    log_event(session, subscriber, "changed", source, detail)
    return True


def pause_subscriber(
    session: Session, subscriber: Subscriber, until: date | None, source: str
) -> None:
    """No digest before `until`; None resumes at once. Logged as paused or resumed."""
    if subscriber.paused_until == until:
        return
    subscriber.paused_until = until
    if until is None:
        log_event(session, subscriber, "resumed", source)
    else:
        log_event(session, subscriber, "paused", source, f"until {until.isoformat()}")


def resubscribe(session: Session, subscriber: Subscriber, source: str) -> bool:
    """An address that left (or bounced) comes back, by its owner's act (the preferences page)
    or an operator's (`subscribers edit --resubscribe`); logged. Its old hard failures no
    longer count: one more must not bounce it again."""
    subscriber.bounce_count = 0
    subscriber.paused_until = None
    return set_status(session, subscriber, SubscriberStatus.active, source, "came back")


# ---------------------------------------------------------------- digests and deliveries


def digest_on(session: Session, issue_date: date) -> Digest | None:
    return session.scalar(select(Digest).where(Digest.issue_date == issue_date))


def latest_digest_before(session: Session, issue_date: date) -> Digest | None:
    return session.scalar(
        select(Digest)
        .where(Digest.issue_date < issue_date)
        .order_by(Digest.issue_date.desc())
        .limit(1)
    )


def list_digests(session: Session) -> list[Digest]:
    return list(session.scalars(select(Digest).order_by(Digest.issue_date.desc())))


def digest_ids_since(session: Session, since: date) -> list[int]:
    """The ids of the digests of `since` and after, newest first."""
    query = select(Digest.id).where(Digest.issue_date >= since).order_by(Digest.issue_date.desc())
    return list(session.scalars(query))


def public_ids_without_delivery(
    session: Session, digest_id: int, subscriber_ids: Iterable[int]
) -> dict[int, str]:
    """The public ids of those of these subscribers who have no delivery row for the digest."""
    wanted = sorted(set(subscriber_ids))
    if not wanted:
        return {}
    has_row = (
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, Delivery.subscriber_id == Subscriber.id)
        .exists()
    )
    rows = session.execute(
        select(Subscriber.id, Subscriber.public_id).where(Subscriber.id.in_(wanted), ~has_row)
    )
    return {subscriber_id: public_id for subscriber_id, public_id in rows}


def add_deliveries(session: Session, rows: list[dict]) -> None:
    """Insert delivery rows in one executemany (multi-row INSERTs where the driver allows)."""
    if rows:
        session.execute(Delivery.__table__.insert(), rows)


def delivery_counts(session: Session, digest_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)
    )
    return {str(status): count for status, count in rows}


def deliveries_of(session: Session, digest_id: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
        )
    )


Written = TypeVar("Written")


def in_savepoint(session: Session, write: Callable[[], Written]) -> Written:
    """`write()` in a savepoint of its own: when the database refuses the record itself (a
    constraint or trigger: IntegrityError; a value it cannot store, PostgreSQL's NUL or one
    too long for its column: DataError), only its writes are undone, the session goes on,
    and InvalidInput says why. So one bad record of an import never stops the rest, and what
    is kept is the same on SQLite and PostgreSQL.

    A failure of the database itself (locked, gone, its disk full: OperationalError and the
    rest) is no verdict on the record, and would be the same for every one: it goes on up,
    to be said once (the CLI) or waited out (the worker), and nothing of the unit is kept."""
    try:
        with session.begin_nested():
            return write()
    except (IntegrityError, DataError) as error:
        reason = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
        raise InvalidInput(f"the database refused it: {reason}") from error


def import_subscriber(session: Session, spec: SubscriberSpec, *, update_existing: bool) -> str:
    """Add one imported subscriber: "added", "updated", "unchanged" or "left unsubscribed".

    An address that left the list is never put back by an import: only its owner can do that.
    """
    topics = get_topics(session, spec.topics)
    existing = find_subscriber(session, spec.email)
    if existing is None:
        add_subscriber(session, spec, source="import")
        return "added"
    if existing.status != SubscriberStatus.active:
        return f"left {existing.status.value}"
    if not update_existing:
        return "unchanged"
    mail_format = spec.format or existing.format  # no format given: theirs stays
    wanted = (spec.name, spec.language, mail_format, {t.id for t in topics})
    have = (existing.name, existing.language, existing.format, {t.id for t in existing.topics})
    if have == wanted:
        return "unchanged"
    existing.name, existing.language, existing.topics = spec.name, spec.language, topics
    existing.format = mail_format
    log_event(session, existing, "changed", "import", ", ".join(t.name for t in topics))
    return "updated"


def topic_counts_between(session: Session, start: datetime | None, end: datetime) -> dict[int, int]:
    """Papers each topic first matched in (start, end], by topic id (topics with none left out)."""
    query = (
        select(TopicPaper.topic_id, func.count())
        .where(TopicPaper.linked_at <= end)
        .group_by(TopicPaper.topic_id)
    )
    if start is not None:
        query = query.where(TopicPaper.linked_at > start)
    return {topic_id: count for topic_id, count in session.execute(query)}


def recent_papers(
    session: Session, until: datetime, *, topic_id: int | None = None, limit: int = 50
) -> list[tuple[Paper, datetime]]:
    """The papers (of a topic, or of any) first matched up to `until`, with when: newest first."""
    first_seen = func.min(TopicPaper.linked_at).label("first_linked")
    query = (
        select(Paper, first_seen)
        .join(TopicPaper, TopicPaper.paper_id == Paper.id)
        .where(TopicPaper.linked_at <= until)
        .group_by(Paper.id)
        .order_by(first_seen.desc(), Paper.published.desc(), Paper.id.desc())
        .limit(limit)
    )
    if topic_id is not None:
        query = query.where(TopicPaper.topic_id == topic_id)
    return [(paper, _aware(linked)) for paper, linked in session.execute(query)]


def topic_names_of(session: Session, paper_ids: Iterable[int]) -> dict[int, list[str]]:
    """The names of the topics that matched each paper, by paper id, in display order."""
    ids = sorted(set(paper_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(TopicPaper.paper_id, Topic.name)
        .join(Topic, Topic.id == TopicPaper.topic_id)
        .where(TopicPaper.paper_id.in_(ids))
        .order_by(Topic.position, Topic.id)
    )
    found: dict[int, list[str]] = {}
    for paper_id, name in rows:
        found.setdefault(paper_id, []).append(name)
    return found


def count_papers_between(session: Session, start: datetime | None, end: datetime) -> int:
    """Distinct papers any topic first matched in (start, end]: a digest's size."""
    query = select(func.count(func.distinct(TopicPaper.paper_id))).where(
        TopicPaper.linked_at <= end
    )
    if start is not None:
        query = query.where(TopicPaper.linked_at > start)
    return session.scalar(query) or 0


def subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def record_bounce(session: Session, bounce: Bounce) -> str:
    """Apply a bounce to the subscriber it names: "bounced", "counted", "ignored" or "unknown".

    An unknown user (5.1.x) is bounced at once; other hard failures are counted and the third
    bounces the address; temporary ones (4.x.x) change nothing.
    """
    subscriber = find_subscriber(session, bounce.recipient)
    if subscriber is None:
        return "unknown"
    outcome = classify(bounce, subscriber.bounce_count)
    if outcome == "ignored":
        return outcome
    subscriber.bounce_count += 1
    detail = f"{bounce.status} {bounce.diagnostic}".strip()
    if outcome == "bounced":
        if not set_status(session, subscriber, SubscriberStatus.bounced, "bounce", detail):
            return "ignored"
    else:
        log_event(session, subscriber, "hard failure", "bounce", detail)
    return outcome


def sent_message_to(session: Session, message_id: str, address: str) -> bool:
    """Whether we sent the message with this Message-ID to this address (a digest delivery)."""
    if not message_id:
        return False
    query = (
        select(Delivery.id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.message_id == message_id, Subscriber.email_key == email_key(address))
        .limit(1)
    )
    return session.scalar(query) is not None


def mail_was_read(session: Session, key: str) -> bool:
    """Whether a received message (by `mailboxes.message_key`) was acted on already."""
    return session.scalar(select(ReceivedMail.id).where(ReceivedMail.key == key)) is not None


def remember_mail(session: Session, key: str, kind: str) -> None:
    session.add(ReceivedMail(key=key, kind=kind))
    session.flush()  # a copy later in the same mailbox is then skipped


# ---------------------------------------------------------------- translations


def papers_by_arxiv_ids(session: Session, arxiv_ids: Iterable[str]) -> list[Paper]:
    ids = sorted(set(arxiv_ids))
    if not ids:
        return []
    return list(session.scalars(select(Paper).where(Paper.arxiv_id.in_(ids))))


def translations_of(
    session: Session, arxiv_ids: Iterable[str], language: str
) -> dict[str, Translation]:
    """The stored translations into `language` of these papers, by arXiv id."""
    ids = sorted(set(arxiv_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Paper.arxiv_id, Translation)
        .join(Translation, Translation.paper_id == Paper.id)
        .where(Paper.arxiv_id.in_(ids), Translation.language == language)
    )
    return {arxiv_id: translation for arxiv_id, translation in rows}


def save_translation(
    session: Session,
    paper_id: int,
    language: str,
    provider: str,
    *,
    abstract: str | None = None,
    title: str | None = None,
) -> bool:
    """Store a paper's translated abstract and/or title; False when nothing could be stored.

    A title alone is stored only beside an abstract already there (the abstract is what a
    translation row is for). Another process storing the same pair first wins.
    """
    existing = session.scalar(
        select(Translation).where(
            Translation.paper_id == paper_id, Translation.language == language
        )
    )
    if existing is None:
        if abstract is None:
            return False
        try:
            with session.begin_nested():
                session.add(
                    Translation(
                        paper_id=paper_id,
                        language=language,
                        provider=provider,
                        abstract=abstract,
                        title=title,
                    )
                )
        except IntegrityError:
            return False
        return True
    if abstract is not None:
        existing.abstract, existing.provider = abstract, provider
    if title is not None:
        existing.title = title
    return True


def papers_missing_translation(
    session: Session,
    language: str,
    *,
    since: datetime | None = None,
    topic_ids: Iterable[int] | None = None,
    titles: bool = False,
) -> list[Paper]:
    """Papers with no translation into `language` (or, with `titles`, no translated title),
    newest first; only those first seen since `since`, of these topics, when given."""
    missing = Translation.id.is_(None)
    if titles:
        missing = or_(missing, Translation.title.is_(None))
    query = (
        select(Paper)
        .outerjoin(
            Translation,
            and_(Translation.paper_id == Paper.id, Translation.language == language),
        )
        .where(missing)
        .order_by(Paper.first_seen_at.desc(), Paper.id.desc())
    )
    if since is not None:
        query = query.where(Paper.first_seen_at >= since)
    if topic_ids is not None:
        linked = select(TopicPaper.paper_id).where(TopicPaper.topic_id.in_(list(topic_ids)))
        query = query.where(Paper.id.in_(linked))
    return list(session.scalars(query))


def topics_by_subscriber_language(session: Session) -> dict[str, set[int]]:
    """Each language active subscribers read, with the topics they follow."""
    rows = session.execute(
        select(Subscriber.language, SubscriberTopic.topic_id)
        .join(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .where(Subscriber.status == SubscriberStatus.active)
    )
    found: dict[str, set[int]] = {}
    for language, topic_id in rows:
        found.setdefault(language, set()).add(topic_id)
    return found


def count_translations(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Translation)) or 0


# ---------------------------------------------------------------- claiming deliveries


def _due_now(now: datetime):
    """Pending rows whose retry time has come, and rows whose claim has lapsed."""
    return or_(
        and_(
            Delivery.status == DeliveryStatus.pending,
            or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
        ),
        and_(Delivery.status == DeliveryStatus.sending, Delivery.lease_until < now),
    )


def claim_deliveries(
    session: Session, digest_id: int, worker: str, limit: int, now: datetime, lease: timedelta
) -> list[int]:
    """Atomically take up to `limit` due deliveries for `worker` until `now + lease`.

    PostgreSQL skips rows other workers have locked meanwhile; SQLite runs the single
    UPDATE … RETURNING while holding its write lock, which is as exclusive.
    """
    due = (
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, _due_now(now))
        .order_by(Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(status=DeliveryStatus.sending, claimed_by=worker, lease_until=now + lease)
        .returning(Delivery.id)
    )
    return sorted(claimed)


class ClaimedDelivery(NamedTuple):
    """A claimed delivery with what sending it needs of its subscriber."""

    delivery_id: int
    message_id: str
    subscriber_id: int
    email: str
    public_id: str
    status: SubscriberStatus
    language: str
    format: MailFormat
    paused_until: date | None
    topic_ids: tuple[int, ...]
    """The subscriber's topics now, in display order."""


def claimed_rows(session: Session, ids: list[int]) -> list[ClaimedDelivery]:
    """The claimed deliveries, by id, with their subscribers' fields and topics: one SELECT
    (a row per topic, grouped here)."""
    if not ids:
        return []
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.message_id,
            Subscriber.id,
            Subscriber.email,
            Subscriber.public_id,
            Subscriber.status,
            Subscriber.language,
            Subscriber.format,
            Subscriber.paused_until,
            SubscriberTopic.topic_id,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .outerjoin(Topic, Topic.id == SubscriberTopic.topic_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id, Topic.position, Topic.id)
    )
    claimed: dict[int, ClaimedDelivery] = {}
    topics: dict[int, list[int]] = {}
    for *fields, topic_id in rows:
        delivery_id = fields[0]
        if delivery_id not in claimed:
            claimed[delivery_id] = ClaimedDelivery(*fields, topic_ids=())
            topics[delivery_id] = []
        if topic_id is not None:
            topics[delivery_id].append(topic_id)
    return [row._replace(topic_ids=tuple(topics[key])) for key, row in claimed.items()]


def finish_delivery(
    session: Session, delivery_id: int, status: DeliveryStatus, detail: str
) -> None:
    """Sent, failed or skipped: the row is done and no longer claimed."""
    values: dict = {
        "status": status,
        "detail": detail[:2000],
        "claimed_by": None,
        "lease_until": None,
    }
    if status != DeliveryStatus.skipped:
        values["attempts"] = Delivery.attempts + 1
    if status == DeliveryStatus.sent:
        values["sent_at"] = utcnow()
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def finish_sent(session: Session, replies: Mapping[int, str]) -> int:
    """Many deliveries sent, each with the server's reply: one UPDATE for them all (for up to
    `IN_LIST_LIMIT` of them); how many were not marked finished before.

    Rows already finished are left as they are: a sender's group and the send journal folded
    by another sender (see `send_journal`) may both say the same message went, and it went once.
    """
    items = list(replies.items())
    marked = 0
    for start in range(0, len(items), IN_LIST_LIMIT):
        chunk = dict(items[start : start + IN_LIST_LIMIT])
        marked += session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(list(chunk)),
                Delivery.status.in_([DeliveryStatus.pending, DeliveryStatus.sending]),
            )
            .values(
                status=DeliveryStatus.sent,
                detail=case({key: reply[:2000] for key, reply in chunk.items()}, value=Delivery.id),
                attempts=Delivery.attempts + 1,
                sent_at=utcnow(),
                claimed_by=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    return marked


def skip_deliveries(session: Session, delivery_ids: list[int], detail: str) -> None:
    """Deliveries not to send (the subscriber left, bounced or paused): one UPDATE."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .values(status=DeliveryStatus.skipped, detail=detail, claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def defer_delivery(session: Session, delivery_id: int, detail: str, not_before: datetime) -> None:
    """A temporary failure: pending again, not before `not_before`."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(
            status=DeliveryStatus.pending,
            detail=detail[:2000],
            attempts=Delivery.attempts + 1,
            not_before=not_before,
            claimed_by=None,
            lease_until=None,
        )
    )


def renew_claims(session: Session, ids: list[int], worker: str, lease_until: datetime) -> set[int]:
    """Extend `worker`'s claim on these deliveries; the ids it still holds (others may have
    claimed some after its lease ended)."""
    if not ids:
        return set()
    renewed = session.scalars(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.sending,
            Delivery.claimed_by == worker,
        )
        .values(lease_until=lease_until)
        .returning(Delivery.id)
    )
    return set(renewed)


def release_deliveries(session: Session, ids: list[int], worker: str) -> None:
    """Give claimed, unsent deliveries back (pending, unclaimed) if `worker` still holds them."""
    if ids:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                Delivery.status == DeliveryStatus.sending,
                Delivery.claimed_by == worker,
            )
            .values(status=DeliveryStatus.pending, claimed_by=None, lease_until=None)
        )


def count_unfinished(session: Session, digest_id: int) -> int:
    """Deliveries pending or being sent."""
    unfinished = [DeliveryStatus.pending, DeliveryStatus.sending]
    query = select(func.count()).where(
        Delivery.digest_id == digest_id, Delivery.status.in_(unfinished)
    )
    return session.scalar(query) or 0


def next_due_at(session: Session, digest_id: int) -> datetime | None:
    """When the next unfinished delivery can be sent (now, a retry time, or a lease's end)."""
    pending = session.scalar(
        select(func.min(func.coalesce(Delivery.not_before, Delivery.created_at))).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.pending
        )
    )
    leased = session.scalar(
        select(func.min(Delivery.lease_until)).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending
        )
    )
    times = [_aware(moment) for moment in (pending, leased) if moment is not None]
    return min(times) if times else None


def _aware(moment: datetime) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back naive (UTC) datetimes or text.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def digest_by_id(session: Session, digest_id: int) -> Digest:
    return session.get(Digest, digest_id)


def failed_deliveries(
    session: Session, digest_id: int, limit: int = 50
) -> list[tuple[str, str, str]]:
    """(address, status, server's reply) of deliveries that failed or wait for a retry."""
    rows = session.execute(
        select(Subscriber.email, Delivery.status, Delivery.detail)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.digest_id == digest_id,
            or_(
                Delivery.status == DeliveryStatus.failed,
                and_(Delivery.status == DeliveryStatus.pending, Delivery.attempts > 0),
            ),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    return [(email, str(status), detail) for email, status, detail in rows]


def claims_in_flight(session: Session, digest_id: int) -> list[tuple[str, int, datetime]]:
    """(worker, deliveries it holds, when its lease ends) for the digest's claimed rows."""
    rows = session.execute(
        select(Delivery.claimed_by, func.count(), func.max(Delivery.lease_until))
        .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending)
        .group_by(Delivery.claimed_by)
    )
    return [(worker or "?", count, _aware(lease)) for worker, count, lease in rows]
