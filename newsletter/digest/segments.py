"""Who receives which body: a digest's readers grouped into segments, the list streamed once.

A segment is the subscribers who receive the same body: the same topics (in display order)
and the same language. (The mail format is not part of it: a body is encoded in each format
its segment's readers take when it is sent.) The list is streamed (subscriber ids, languages,
pauses and topic ids, never whole subscribers), so memory holds an integer a subscriber; a
send streams it once (`Readers`) and hands the groups to the steps that need them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.digest.content import DigestContent
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.models import Digest

SegmentKey = tuple[tuple[int, ...], str]
"""(topic ids in display order, language): who gets the same body."""


@dataclass(frozen=True)
class Segment:
    """Subscribers who receive the same body: same topics, same language."""

    topic_ids: tuple[int, ...]
    language: str
    subscriber_ids: tuple[int, ...]
    content: DigestContent


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
    def stream(cls, session: Session, on: date, *, earlier: date | None = None) -> Readers:
        if earlier is not None and earlier > on:
            raise ValueError(f"{earlier} is not before {on}")
        groups: dict[SegmentKey, list[int]] = defaultdict(list)
        earlier_keys: dict[SegmentKey, None] = {}
        for subscriber_id, key, paused_until in subscriber_segments(session, on):
            groups[key].append(subscriber_id)
            if earlier is not None and (paused_until is None or paused_until <= earlier):
                earlier_keys.setdefault(key, None)
        return cls(
            on,
            {key: tuple(ids) for key, ids in groups.items()},
            earlier,
            tuple(earlier_keys),
        )

    @property
    def languages(self) -> set[str]:
        return {language for _topic_ids, language in self.groups}


def subscriber_segments(
    session: Session, on: date
) -> Iterator[tuple[int, SegmentKey, date | None]]:
    """(subscriber id, segment key, paused until) of every active subscriber not paused on
    `on`."""
    current, language, paused_until, topic_ids = None, "", None, []
    for subscriber_id, row_language, row_paused, topic_id in store.subscriber_topic_rows(
        session, on
    ):
        if subscriber_id != current:
            if current is not None:
                yield current, (tuple(topic_ids), language), paused_until
            current, language, paused_until, topic_ids = subscriber_id, row_language, row_paused, []
        topic_ids.append(topic_id)
    if current is not None:
        yield current, (tuple(topic_ids), language), paused_until


def segments_of(session: Session, edition: Edition, readers: Readers) -> list[Segment]:
    """Each group of readers with its body (assembled once): the translations their languages
    need are read first. A group whose topics have nothing new is left out unless the edition's
    options include empty ones."""
    edition.load_languages(session, readers.languages)
    segments = []
    for (topic_ids, language), subscriber_ids in readers.groups.items():
        content = edition.content(topic_ids, language)
        if content.paper_count or edition.options.include_empty:
            segments.append(Segment(topic_ids, language, subscriber_ids, content))
    return segments


def read_segments(session: Session, digest: Digest, options: EditionOptions) -> list[Segment]:
    """A digest's segments, read afresh: its edition, and its day's readers streamed."""
    edition = Edition.read(session, digest, options)
    return segments_of(session, edition, Readers.stream(session, digest.issue_date))
