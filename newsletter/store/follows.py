"""Followed authors: who follows whom (by `authors.follow_key`), the names the fetch asks arXiv
for, and the papers a day brought, for the "From people you follow" section."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.intake.subscribers import followed_names as checked_follows
from newsletter.models import Follow, Paper, Subscriber, SubscriberStatus

# A module, not its constant: `subscribers` adds a new subscriber's follows with this module.
from newsletter.store import subscribers as _subscribers


def follows_of(session: Session, subscriber_id: int) -> list[Follow]:
    """The authors one subscriber follows, in the order they were added."""
    return list(
        session.scalars(
            select(Follow)
            .where(Follow.subscriber_id == subscriber_id)
            .order_by(Follow.created_at, Follow.name_key)
        )
    )


def add_follows(session: Session, subscriber_id: int, names: Iterable[str]) -> list[str]:
    """Follow these authors; the keys newly followed (one already followed is left as it is).

    Every name is checked before anything is written: one that cannot be followed raises
    `InvalidInput` and adds none.
    """
    wanted = checked_follows(names)
    have = {follow.name_key for follow in follows_of(session, subscriber_id)}
    added = [key for key in wanted if key not in have]
    session.add_all(
        Follow(subscriber_id=subscriber_id, name_key=key, name=wanted[key]) for key in added
    )
    session.flush()
    return added


def remove_follows(session: Session, subscriber_id: int, names: Iterable[str]) -> list[str]:
    """Stop following these authors (however written: `He, Kaiming` removes `Kaiming He`);
    the keys that were followed and are no longer."""
    keys = list(checked_follows(names))
    if not keys:
        return []
    have = {follow.name_key for follow in follows_of(session, subscriber_id)}
    session.execute(
        delete(Follow).where(Follow.subscriber_id == subscriber_id, Follow.name_key.in_(keys))
    )
    return [key for key in keys if key in have]


def set_follows(session: Session, subscriber_id: int, names: Iterable[str]) -> bool:
    """Follow exactly these authors (an import's `follows` column); False when they were
    those already."""
    wanted = checked_follows(names)
    have = {follow.name_key for follow in follows_of(session, subscriber_id)}
    if have == set(wanted):
        return False
    remove_follows(session, subscriber_id, [key for key in have if key not in wanted])
    add_follows(session, subscriber_id, wanted.values())
    return True


def followed_names(session: Session) -> list[str]:
    """One name for each person active subscribers follow (however many follow them): what the
    fetch asks arXiv for."""
    rows = session.execute(
        select(Follow.name_key, func.min(Follow.name))
        .join(Subscriber, Subscriber.id == Follow.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.active)
        .group_by(Follow.name_key)
        .order_by(Follow.name_key)
    )
    return [name for _key, name in rows]


def follow_keys_of(session: Session, subscriber_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The follow keys of each of these subscribers (an empty tuple for one who follows no
    one), for `authors.FollowIndex.papers_for`."""
    return _follows_by_subscriber(session, subscriber_ids, Follow.name_key)


def follow_names_of(session: Session, subscriber_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The followed authors of each of these subscribers, as they wrote them."""
    return _follows_by_subscriber(session, subscriber_ids, Follow.name)


def _follows_by_subscriber(
    session: Session, subscriber_ids: Iterable[int], column: InstrumentedAttribute
) -> dict[int, tuple[str, ...]]:
    wanted = sorted(set(subscriber_ids))
    found: dict[int, list[str]] = {subscriber_id: [] for subscriber_id in wanted}
    limit = _subscribers.IN_LIST_LIMIT
    for start in range(0, len(wanted), limit):
        chunk = wanted[start : start + limit]
        rows = session.execute(
            select(Follow.subscriber_id, column)
            .where(Follow.subscriber_id.in_(chunk))
            .order_by(Follow.subscriber_id, Follow.created_at, Follow.name_key)
        )
        for subscriber_id, value in rows:
            found[subscriber_id].append(value)
    return {subscriber_id: tuple(values) for subscriber_id, values in found.items()}


def papers_first_seen_between(
    session: Session, start: datetime | None, end: datetime
) -> list[Paper]:
    """Papers first stored within (start, end] (from the beginning when start is None), by any
    fetch, topic or follow: the candidates of a digest's "From people you follow". Newest
    submission first."""
    query = select(Paper).where(Paper.first_seen_at <= end)
    if start is not None:
        query = query.where(Paper.first_seen_at > start)
    return list(session.scalars(query.order_by(Paper.published.desc(), Paper.id.desc())))
