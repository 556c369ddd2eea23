"""The tables: topics, papers, subscribers, digests, deliveries and the event log."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import PopulateDict, memoized_property


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    """An unguessable public identifier (128 bits), separate from the integer key."""
    return secrets.token_urlsafe(16)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class PartialIndex(Index):
    """An index (unique unless `unique=False`) of the rows `where` holds for (SQL), on SQLite
    and PostgreSQL alike.

    Each dialect is given the `where` when it asks for its options (to create or compare the
    index), not when the table is defined: `postgresql_where=` there makes SQLAlchemy import
    its PostgreSQL dialect, and the modules of all its drivers, to check the argument, in every
    process that imports the tables, on SQLite too (about 30 ms of each command's start).
    """

    WHERE_DIALECTS = ("sqlite", "postgresql")

    def __init__(self, name: str, *columns: str, where: str, unique: bool = True) -> None:
        super().__init__(name, *columns, unique=unique)
        self.rows_where = text(where)

    @memoized_property
    def dialect_options(self) -> PopulateDict:
        def options_of(dialect_name: str):
            options = self._kw_reg_for_dialect_cls(dialect_name)
            if dialect_name in self.WHERE_DIALECTS:
                options["where"] = self.rows_where
            return options

        return PopulateDict(options_of)

    @property
    def dialect_kwargs(self):
        """`postgresql_where=` and `sqlite_where=`, as tools that copy an index read them
        (Alembic's autogenerate, `Table.to_metadata`): loads the dialects when asked."""
        for dialect_name in self.WHERE_DIALECTS:
            self.dialect_options[dialect_name]  # noqa: B018 (made on first look)
        return super().dialect_kwargs


class Base(DeclarativeBase):
    # Stable constraint names, so Alembic migrations can refer to them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class SubscriberStatus(enum.StrEnum):
    pending = "pending"
    """Asked to subscribe on the web and not confirmed yet: gets nothing but the confirmation."""
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


class MailFormat(enum.StrEnum):
    html = "html"
    """HTML with its plain-text alternative (multipart/alternative): what most readers get."""
    text = "text"
    """Plain text only, for readers who want no HTML at all."""


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"
    """Not sent: the subscriber left (or bounced, or paused) after the digest was built."""


UNSENT = (DeliveryStatus.pending, DeliveryStatus.sending)
"""The states of a delivery still to send (or being sent): what a claim looks among."""
UNSENT_WHERE = f"status IN ({', '.join(repr(status.value) for status in UNSENT)})"
"""`UNSENT` as the SQL of `ix_deliveries_unsent`'s rows: status IN ('pending', 'sending')."""


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    """The name folded to lower case: topic names are unique regardless of case."""
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    excludes: Mapped[list[str]] = mapped_column(JSON, default=list)
    raw_query: Mapped[str | None] = mapped_column(Text, default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fetch_incomplete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The last fetch stopped on an error, after some pages: the papers of the pages it missed
    are older than the ones it stored, so the next fetch reads on past the known papers."""


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(40), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    primary_category: Mapped[str] = mapped_column(String(40), default="")
    published: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    journal_ref: Mapped[str | None] = mapped_column(Text, default=None)
    doi: Mapped[str | None] = mapped_column(String(200), default=None)
    abs_url: Mapped[str] = mapped_column(String(300))
    pdf_url: Mapped[str | None] = mapped_column(String(300), default=None)
    code_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    code_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When code-link sources beyond the abstract (Hugging Face) were last asked."""
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    code_found_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    """When a code link was first found after the paper was first seen (a Hugging Face check,
    a new version's abstract or comment): "Code released since" news for its earlier readers."""


class Summary(Base):
    """A paper's one-sentence summary in one language: made once, kept for every reader."""

    __tablename__ = "summaries"

    id: Mapped[int] = mapped_column(primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(35))
    provider: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("paper_id", "language", name="uq_summaries_paper_language"),)


class Translation(Base):
    """A paper's title and abstract in one language: translated once, kept for every reader."""

    __tablename__ = "translations"

    id: Mapped[int] = mapped_column(primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(35))
    provider: Mapped[str] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(Text, default=None)
    abstract: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("paper_id", "language", name="uq_translations_paper_language"),
    )


class TopicPaper(Base):
    """A paper matched by a topic's query, and when we first saw that match."""

    __tablename__ = "topic_papers"

    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_topic_papers_topic_linked", "topic_id", "linked_at"),)


class Cadence(enum.StrEnum):
    daily = "daily"
    """Each new digest (arXiv announces five days a week), at the reader's hour."""
    weekly = "weekly"
    """Once a week, on the reader's weekday: everything first seen since their previous one."""


class DigestKind(enum.StrEnum):
    daily = "daily"
    """The papers one daily job found: one per issue date, the archive's pages."""
    span = "span"
    """Several days' papers for readers whose previous digest is older than the day's (weekly
    readers, a cadence change): a window of consecutive daily digests, made when first due."""


class ChatPlatform(enum.StrEnum):
    """Where a channel subscriber's digest is posted instead of mailed."""

    slack = "slack"
    """A Slack incoming-webhook URL (Block Kit messages)."""
    discord = "discord"
    """A Discord webhook URL (embeds)."""
    matrix = "matrix"
    """A Matrix room: homeserver URL, room id and an access token (HTML messages)."""
    feishu = "feishu"
    """A Feishu / Lark custom-bot webhook URL (interactive cards), with its signing secret."""


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    """The address folded to lower case: one subscriber per address, whatever its case."""
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(35), default="en")
    format: Mapped[MailFormat] = mapped_column(
        Enum(MailFormat, native_enum=False, length=10),
        default=MailFormat.html,
        server_default=MailFormat.html.value,
    )
    """What their digest is made of: HTML and text, or text only."""
    status: Mapped[SubscriberStatus] = mapped_column(
        Enum(SubscriberStatus, native_enum=False, length=20), default=SubscriberStatus.active
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """The last confirmation email: repeated requests within a window send no other."""
    paused_until: Mapped[date | None] = mapped_column(Date, default=None)
    """No digest before this day (a pause the subscriber chose)."""
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    """Hard failures that were not a plain unknown user; the third marks the address bounced."""
    ranking: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Their papers ordered by what they saved and rated (when they have enough signal and the
    list ranks at all); off, newest first."""
    cadence: Mapped[Cadence] = mapped_column(
        Enum(Cadence, native_enum=False, length=10),
        default=Cadence.daily,
        server_default=Cadence.daily.value,
    )
    send_hour: Mapped[int | None] = mapped_column(Integer, default=None)
    """The local hour (0-23) their digest goes out at; None: as soon as the daily job built it."""
    send_day: Mapped[int | None] = mapped_column(Integer, default=None)
    """Weekly readers' weekday, 0 = Monday (None: Monday)."""
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    """Their IANA time zone (None: NEWSLETTER_TIMEZONE)."""
    next_send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    """When they are next due (their hour, their day, in their zone, as a UTC instant); None:
    whenever a new daily digest is ready (daily readers without an hour)."""
    delivered_through: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """The end of the window of the last digest they were given: their next one starts there,
    whatever their cadence was (so a change of cadence loses and repeats no paper)."""

    channel: Mapped[ChatPlatform | None] = mapped_column(
        Enum(ChatPlatform, native_enum=False, length=20), default=None
    )
    """A team chat channel's platform: its digest is posted there, not mailed. None: a person
    with an email address (`email`). A channel's `email` is only its label."""
    channel_url: Mapped[str | None] = mapped_column(Text, default=None)
    """The channel's incoming-webhook URL (Slack, Discord, Feishu), or its Matrix homeserver.
    A secret: whoever has it can post there. Never printed whole."""
    channel_room: Mapped[str | None] = mapped_column(String(255), default=None)
    """The Matrix room id (`!abc:example.org`)."""
    channel_secret: Mapped[str | None] = mapped_column(Text, default=None)
    """The Matrix access token, or the Feishu bot's signing secret. Never printed."""

    topics: Mapped[list[Topic]] = relationship(
        secondary="subscriber_topics", order_by="Topic.position, Topic.id", lazy="selectin"
    )


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )


class Event(Base):
    """What happened to a subscriber, when, and through which door (cli, web, one-click, bounce)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceivedMail(Base):
    """A message of the digest's mailbox (a bounce report, an unsubscribe request) acted on
    already: read again, it is skipped."""

    __tablename__ = "received_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    """Its Message-ID, or `sha256:<hex>` of its bytes when it has none."""
    kind: Mapped[str] = mapped_column(String(20))
    """"bounce" or "unsubscribe"."""
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Digest(Base):
    """One issue: the papers that topics first matched within (window_start, window_end].

    A daily digest is one daily job's papers (one per issue date); a span covers consecutive
    daily digests, for readers whose previous digest ended earlier (see `DigestKind`).
    """

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[DigestKind] = mapped_column(
        Enum(DigestKind, native_enum=False, length=10),
        default=DigestKind.daily,
        server_default=DigestKind.daily.value,
    )
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When it was built (ranked, translated): readers are given it from then on."""

    @property
    def path(self) -> str:
        """How its web address and its messages' ids name it: a daily digest by its date, a
        span as `span-<id>` (several spans can share a date)."""
        if self.kind == DigestKind.span:
            return f"span-{self.id}"
        return self.issue_date.isoformat()

    __table_args__ = (
        # One daily digest a day; one span a window. (Partial unique indexes: both backends.)
        PartialIndex("uq_digests_daily_issue_date", "issue_date", where="kind = 'daily'"),
        PartialIndex("uq_digests_span_window", "window_start", "window_end", where="kind = 'span'"),
    )


class Delivery(Base):
    """One digest for one subscriber: the record that makes a rerun send nothing twice."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=20), default=DeliveryStatus.pending
    )
    message_id: Mapped[str] = mapped_column(String(200))
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    """The worker sending it now; its claim holds until `lease_until`."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """After a temporary failure: not retried before this time (exponential backoff)."""
    detail: Mapped[str] = mapped_column(Text, default="")
    """The server's last reply, or the outbox file."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id", name="uq_deliveries_digest_subscriber"),
        Index("ix_deliveries_digest_status", "digest_id", "status"),
        # What a claim walks, in order: a digest's rows still to send. The rows sent (most of
        # them, late in a send) are not in it, so no claim passes them all again.
        PartialIndex(
            "ix_deliveries_unsent",
            "digest_id",
            "id",
            where=UNSENT_WHERE,
            unique=False,
        ),
        # A bounce report names the message that failed: found by its Message-ID.
        Index("ix_deliveries_message_id", "message_id"),
    )


class Follow(Base):
    """An author a subscriber follows: new papers by them arrive whatever their topics."""

    __tablename__ = "follows"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    name_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    """The name as `authors.follow_key` folds it (no accents, no case, "Last, First" turned):
    one follow per person, however it was written."""
    name: Mapped[str] = mapped_column(String(200))
    """The name as the reader wrote it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_follows_name_key", "name_key"),)


class Rating(enum.IntEnum):
    less = -1
    """"Less like this": a negative example for the reader's ranking."""
    more = 1
    """"More like this": a positive example."""


class ReaderPaper(Base):
    """What one reader did with one paper: saved it, rated it, or named it as a seed.

    The only record of a reader's reading: written by an explicit action (a button they
    pressed, a command the operator ran), never by opening an email or following a link.
    """

    __tablename__ = "reader_papers"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """In the reader's library since then; None: not saved (or removed)."""
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    """A `Rating` (+1 more like this, -1 less like this), the last one given."""
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    seed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Named as a paper the reader knows (an arXiv id or a BibTeX entry): a positive example."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_reader_papers_saved", "subscriber_id", "saved_at"),)


class PaperFeatures(Base):
    """A paper's title and abstract as ranking features: computed once per paper."""

    __tablename__ = "paper_features"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    scheme: Mapped[str] = mapped_column(String(40))
    """Which feature scheme made `data` (features of another scheme are made again)."""
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ReaderRanking(Base):
    """One reader's order of one digest's papers, best first: made once per reader per digest
    by their model, read by every process that sends them the digest."""

    __tablename__ = "reader_rankings"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_ids: Mapped[list[int]] = mapped_column(JSON)
    """The digest's papers this reader may be shown, best first."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A token a program presents to the JSON API (`Authorization: Bearer …`), with its scopes.

    Only its SHA-256 is kept: the token is shown once, when the operator creates it.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """hex SHA-256 of the token (tokens are 256 random bits: no salt or slow hash needed)."""
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Refused from then on; kept so that `tokens list` still shows who had access."""


class Webhook(Base):
    """An operator's URL that is told of events (a digest built or sent, a subscriber confirmed,
    unsubscribed or bounced), each delivery signed with its secret."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The event names it receives."""
    secret: Mapped[str] = mapped_column(String(100))
    """The HMAC key its deliveries are signed with (the receiver holds it too)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: written in the transaction that made the event, posted later
    by the worker (so a slow or failing endpoint never holds up what made it)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    """pending (to post, or to retry at `not_before`), sent, or failed (gave up)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    """The endpoint's last answer or error, one line."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_not_before", "status", "not_before"),
        Index("ix_webhook_deliveries_webhook_id", "webhook_id"),
    )
