"""Who receives which body: a digest's readers grouped into segments, the list streamed once.

A segment is the subscribers who receive the same body: the same topics (in display order),
the same language, and the same papers by authors they follow (most readers: none). (The
mail format is not part of it: a body is encoded in each format its segment's readers take
when it is sent; nor is a reader's ranking: their papers are put in their order as their
message is assembled.) The list is streamed (subscriber ids, languages, pauses and topic
ids, never whole subscribers), so memory holds an integer a subscriber; a send streams it
once (`Readers`) and hands the groups to the steps that need them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.batches import chunks
from newsletter.digest.content import DigestContent
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.models import Digest

SegmentKey = tuple[tuple[int, ...], str, tuple[str, ...], datetime | None]
"""(topic ids in display order, language, the arXiv ids of the papers by authors they follow,
since when their "Code released since" looks: `Edition.code_since`): who gets the same
body."""


@dataclass(frozen=True)
class Segment:
    """Subscribers who receive the same body: same topics, same language."""

    topic_ids: tuple[int, ...]
    language: str
    subscriber_ids: tuple[int, ...]
    content: DigestContent
    followed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Readers:
    """A day's readers by segment: the active subscribers not paused that day, streamed once.

    With `earlier` (an earlier day: the previous digest's), the segments that had readers on
    that day too are noted as the stream goes by. Nobody paused on a day is active on an
    earlier one (a pause lasts until a day), so they are among these groups: the earlier day's
    segments need no stream of their own.
    """

    on: date
    groups: dict[SegmentKey, tuple[int, ...]]
    """Subscriber ids by segment key, in the order of each group's first subscriber."""
    earlier: date | None = None
    earlier_keys: tuple[SegmentKey, ...] = ()
    """The segments with readers not paused on `earlier`, in the same order for that day."""

    @classmethod
    def stream(
        cls,
        session: Session,
        on: date,
        *,
        earlier: date | None = None,
        edition: Edition | None = None,
        subscriber_ids: Sequence[int] | None = None,
    ) -> Readers:
        """With `edition`, readers who follow authors of its papers form segments of their
        own (their body starts with those papers); with `subscriber_ids`, only those readers
        (the ones due now) are streamed."""
        if earlier is not None and earlier > on:
            raise ValueError(f"{earlier} is not before {on}")
        groups: dict[SegmentKey, list[int]] = defaultdict(list)
        earlier_keys: dict[SegmentKey, None] = {}
        rows = subscriber_segments(session, on, edition, subscriber_ids)
        for subscriber_id, key, paused_until in rows:
            groups[key].append(subscriber_id)
            if earlier is not None and (paused_until is None or paused_until <= earlier):
                earlier_keys.setdefault(key, None)
        return cls(
            on,
            {key: tuple(ids) for key, ids in groups.items()},
            earlier,
            tuple(earlier_keys),
        )

    def among(self, subscriber_ids: Iterable[int]) -> tuple[Readers, set[int]]:
        """These readers' groups, from this stream (none read again), and those of them it
        does not hold (they joined since it was read)."""
        wanted = set(subscriber_ids)
        groups = {}
        for key, ids in self.groups.items():
            kept = tuple(subscriber_id for subscriber_id in ids if subscriber_id in wanted)
            if kept:
                groups[key] = kept
                wanted.difference_update(kept)
        return Readers(self.on, groups), wanted

    def joined(self, other: Readers) -> Readers:
        """These readers and `other`'s (no reader in both)."""
        groups = dict(self.groups)
        for key, ids in other.groups.items():
            groups[key] = groups.get(key, ()) + ids
        return Readers(self.on, groups)

    @property
    def languages(self) -> set[str]:
        return {key[1] for key in self.groups}


def subscriber_segments(
    session: Session,
    on: date,
    edition: Edition | None = None,
    subscriber_ids: Sequence[int] | None = None,
) -> Iterator[tuple[int, SegmentKey, date | None]]:
    """(subscriber id, segment key, paused until) of every active subscriber not paused on
    `on` (of these, when given); the papers by authors they follow are `edition`'s (none
    without one)."""
    rows = _subscriber_topics(session, on, subscriber_ids)
    for chunk in chunks(rows, store.STREAM_CHUNK):
        yield from _with_followed(session, chunk, edition)


def _with_followed(
    session: Session,
    chunk: list[tuple[int, tuple[int, ...], str, date | None, datetime]],
    edition: Edition | None,
) -> Iterator[tuple[int, SegmentKey, date | None]]:
    followed = {}
    if edition is not None:
        followed = edition.followed_by(session, [row[0] for row in chunk])
    for subscriber_id, topic_ids, language, paused_until, joined in chunk:
        code_since = edition.code_since(joined) if edition is not None else None
        key = (topic_ids, language, followed.get(subscriber_id, ()), code_since)
        yield subscriber_id, key, paused_until


def _subscriber_topics(
    session: Session, on: date, subscriber_ids: Sequence[int] | None = None
) -> Iterator[tuple[int, tuple[int, ...], str, date | None, datetime]]:
    """(subscriber id, topic ids, language, paused until, joined) of every active subscriber
    not paused on `on` (of these, when given)."""
    current, fields, topic_ids = None, (), []
    rows = store.subscriber_topic_rows(session, on, subscriber_ids)
    for subscriber_id, language, paused_until, joined, topic_id in rows:
        if subscriber_id != current:
            if current is not None:
                yield current, tuple(topic_ids), *fields
            current, fields, topic_ids = subscriber_id, (language, paused_until, joined), []
        topic_ids.append(topic_id)
    if current is not None:
        yield current, tuple(topic_ids), *fields


def segments_of(session: Session, edition: Edition, readers: Readers) -> list[Segment]:
    """Each group of readers with its body (assembled once): the translations their languages
    need are read first. A group whose topics have nothing new is left out unless the edition's
    options include empty ones."""
    edition.load_languages(session, readers.languages)
    segments = []
    for key, subscriber_ids in readers.groups.items():
        topic_ids, language, followed, _code_since = key
        content = edition.content(*key)
        if content.has_news or edition.options.include_empty:
            segments.append(Segment(topic_ids, language, subscriber_ids, content, followed))
    return segments


def read_segments(session: Session, digest: Digest, options: EditionOptions) -> list[Segment]:
    """A digest's segments, read afresh: its edition, and its day's readers streamed."""
    edition = Edition.read(session, digest, options)
    readers = Readers.stream(session, digest.issue_date, edition=edition)
    return segments_of(session, edition, readers)
