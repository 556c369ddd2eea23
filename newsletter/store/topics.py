"""Topics: what each matches on arXiv, their slugs, and how many papers and readers each has."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.errors import AlreadyExists, InUse, UnknownTopic
from newsletter.intake.topics import TopicSpec, slugify, topic_key
from newsletter.models import (
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    TopicPaper,
)


def list_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))


def get_topic(session: Session, name: str) -> Topic:
    """The topic of that name (any case or spacing); the error lists the names that exist."""
    topic = session.scalar(select(Topic).where(Topic.name_key == topic_key(name)))
    if topic is None:
        raise _unknown_topic(name, list_topics(session))
    return topic


def known_topics_text(session: Session) -> str:
    return _names_text(list_topics(session))


def _names_text(topics: list[Topic]) -> str:
    names = [topic.name for topic in topics]
    return ", ".join(names) if names else "(none yet: add one with `newsletter topics add`)"


def _unknown_topic(name: str, topics: list[Topic]) -> UnknownTopic:
    return UnknownTopic(f"unknown topic {name!r}; known topics: {_names_text(topics)}")


class TopicsByName:
    """Every topic read once, then named as `get_topics` names them (the same topics, the same
    error): for an import, whose rows name the same few topics over and over."""

    def __init__(self, session: Session) -> None:
        self._topics = list_topics(session)
        self._by_key = {topic.name_key: topic for topic in self._topics}

    def get(self, names: Iterable[str]) -> list[Topic]:
        found: dict[int, Topic] = {}
        for name in names:
            topic = self._by_key.get(topic_key(name))
            if topic is None:
                raise _unknown_topic(name, self._topics)
            found.setdefault(topic.id, topic)
        return list(found.values())


def get_topics(session: Session, names: Iterable[str]) -> list[Topic]:
    """The named topics, each once (`MLLM` and `mllm` are one), in the order first named."""
    topics = {topic.id: topic for topic in (get_topic(session, name) for name in names)}
    return list(topics.values())


def add_topic(session: Session, spec: TopicSpec) -> Topic:
    if session.scalar(select(Topic.id).where(Topic.name_key == topic_key(spec.name))):
        raise AlreadyExists(f"topic {spec.name!r} exists already (change it with `topics edit`)")
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


def remove_topic(session: Session, topic: Topic, *, even_if_followed: bool = False) -> None:
    """Delete a topic (its subscribers keep their other topics); raises InUse when active
    subscribers follow it, unless `even_if_followed`."""
    followers = topic_subscriber_counts(session).get(topic.id, 0)
    if followers and not even_if_followed:
        raise InUse(
            f"{followers} active subscriber(s) follow {topic.name};"
            " add --yes to remove it anyway (the API: ?force=true)"
        )
    session.delete(topic)


def topic_rows(session: Session, topics: Iterable[Topic]) -> list[dict]:
    """Topics as the command line's `--json` and the API show them: what each matches, with
    its subscriber and paper counts."""
    subscribers, papers = topic_subscriber_counts(session), topic_paper_counts(session)
    return [
        {
            "name": topic.name,
            "slug": topic.slug,
            "description": topic.description,
            "keywords": topic.keywords,
            "categories": topic.categories,
            "exclude": topic.excludes,
            "query": topic.raw_query,
            "subscribers": subscribers.get(topic.id, 0),
            "papers": papers.get(topic.id, 0),
        }
        for topic in topics
    ]


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


def set_fetch_incomplete(session: Session, topic_id: int, incomplete: bool) -> None:
    """Remember whether a topic's last fetch stopped on an error (see `Topic.fetch_incomplete`)."""
    session.execute(update(Topic).where(Topic.id == topic_id).values(fetch_incomplete=incomplete))


def topics_by_ids(session: Session, ids: Iterable[int]) -> list[Topic]:
    """The topics with these ids that exist, in their display order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = select(Topic).where(Topic.id.in_(wanted)).order_by(Topic.position, Topic.id)
    return list(session.scalars(query))


def topics_by_slugs(session: Session, slugs: Iterable[str]) -> list[Topic]:
    """The topics with these slugs that exist, in their display order (a form's choice: a
    few topics loaded, not the list)."""
    wanted = sorted(set(slugs))
    if not wanted:
        return []
    query = select(Topic).where(Topic.slug.in_(wanted)).order_by(Topic.position, Topic.id)
    return list(session.scalars(query))


def topic_by_slug(session: Session, slug: str) -> Topic | None:
    return session.scalar(select(Topic).where(Topic.slug == slug))
