"""Who receives which body: a digest's readers grouped into segments, the list streamed once.

A segment is the subscribers who receive the same body: the same topics (in display order)
and the same language. (The mail format is not part of it: a body is encoded in each format
its segment's readers take when it is sent.) The list is streamed (subscriber ids, languages
and topic ids, never whole subscribers), so memory holds an integer a subscriber.
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
    """A day's readers by segment: the active subscribers not paused that day, streamed once."""

    on: date
    groups: dict[SegmentKey, tuple[int, ...]]
    """Subscriber ids by segment key, in the order of each group's first subscriber."""

    @classmethod
    def stream(cls, session: Session, on: date) -> Readers:
        groups: dict[SegmentKey, list[int]] = defaultdict(list)
        for subscriber_id, key in subscriber_segments(session, on):
            groups[key].append(subscriber_id)
        return cls(on, {key: tuple(ids) for key, ids in groups.items()})

    @property
    def languages(self) -> set[str]:
        return {language for _topic_ids, language in self.groups}


def subscriber_segments(session: Session, on: date) -> Iterator[tuple[int, SegmentKey]]:
    """(subscriber id, segment key) of every active subscriber not paused on `on`."""
    current, language, topic_ids = None, "", []
    for subscriber_id, row_language, topic_id in store.subscriber_topic_rows(session, on):
        if subscriber_id != current:
            if current is not None:
                yield current, (tuple(topic_ids), language)
            current, language, topic_ids = subscriber_id, row_language, []
        topic_ids.append(topic_id)
    if current is not None:
        yield current, (tuple(topic_ids), language)


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
