"""Papers: storing what a fetch found, linking it to topics, and reading a window of them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from newsletter.models import (
    Paper,
    PaperFeatures,
    Summary,
    Topic,
    TopicPaper,
    Translation,
    utcnow,
)
from newsletter.store.deliveries import _aware


def linked_arxiv_ids(session: Session, topic_id: int) -> set[str]:
    """The arXiv ids a topic has matched so far (what a fetch stops at)."""
    rows = session.scalars(
        select(Paper.arxiv_id).join(TopicPaper).where(TopicPaper.topic_id == topic_id)
    )
    return set(rows)


def upsert_paper(session: Session, values: dict, at: datetime | None = None) -> tuple[Paper, bool]:
    """Store a paper once per arXiv id; a newer version replaces the stored text.

    A newer version that brings the first code links of a stored paper notes `at` (now by
    default) as when its code was found (`Paper.code_found_at`).
    """
    paper = session.scalar(select(Paper).where(Paper.arxiv_id == values["arxiv_id"]))
    if paper is None:
        paper = Paper(**values)
        session.add(paper)
        session.flush()
        return paper, True
    if values["version"] > paper.version:
        if (values["title"], values["abstract"]) != (paper.title, paper.abstract):
            # A translation or summary (and the ranking features) is of one text: a new
            # version's text is translated, summarized, and its features made, afresh.
            session.execute(delete(Translation).where(Translation.paper_id == paper.id))
            session.execute(delete(Summary).where(Summary.paper_id == paper.id))
            session.execute(delete(PaperFeatures).where(PaperFeatures.paper_id == paper.id))
        # Code found earlier (on Hugging Face, or in an older version's text) stays.
        earlier_code = [url for url in paper.code_urls if url not in values["code_urls"]]
        if values["code_urls"] and not paper.code_urls:
            _code_found(paper, at or utcnow())
        for key, value in values.items():
            setattr(paper, key, value)
        paper.code_urls = list(values["code_urls"]) + earlier_code
    return paper, False


def _code_found(paper: Paper, at: datetime) -> None:
    """Note when a stored paper's first code link was found (kept once set: the news of it
    reaches each earlier reader once, in the digest whose window holds that moment)."""
    if paper.code_found_at is None:
        paper.code_found_at = at


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


def code_released_between(
    session: Session,
    topic_ids: Iterable[int],
    start: datetime,
    end: datetime,
    linked_after: datetime,
) -> list[tuple[int, Paper, datetime]]:
    """(topic id, paper, when the topic matched it) of these topics' papers whose first code
    link was found in (start, end] and that the topic matched in (linked_after, start]: the
    code news of a window for the readers of its earlier ones, newest submission first."""
    ids = sorted(set(topic_ids))
    if not ids or linked_after >= start:
        return []
    query = (
        select(TopicPaper.topic_id, Paper, TopicPaper.linked_at)
        .join(Paper, Paper.id == TopicPaper.paper_id)
        .where(
            Paper.code_found_at > start,
            Paper.code_found_at <= end,
            TopicPaper.topic_id.in_(ids),
            TopicPaper.linked_at > linked_after,
            TopicPaper.linked_at <= start,
        )
        .order_by(Paper.published.desc(), Paper.arxiv_id.desc(), TopicPaper.topic_id)
    )
    return [(topic_id, paper, linked) for topic_id, paper, linked in session.execute(query)]


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
    """Note that a paper's code was asked about at `at`; a repository found goes first (and,
    the paper's first link, is noted as found at `at`).

    True when the link is new to the paper.
    """
    paper = session.get(Paper, paper_id)
    paper.code_checked_at = at
    if code_url is None or code_url in paper.code_urls:
        return False
    if not paper.code_urls:
        _code_found(paper, at)
    paper.code_urls = [code_url, *paper.code_urls]  # a new list: JSON columns track assignment
    return True


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


def papers_by_arxiv_ids(session: Session, arxiv_ids: Iterable[str]) -> list[Paper]:
    ids = sorted(set(arxiv_ids))
    if not ids:
        return []
    return list(session.scalars(select(Paper).where(Paper.arxiv_id.in_(ids))))


def search_papers(
    session: Session,
    *,
    arxiv_id: str | None = None,
    topic_id: int | None = None,
    published_from: datetime | None = None,
    published_before: datetime | None = None,
    limit: int = 50,
) -> list[Paper]:
    """Papers the topics matched, newest submission first, by any of: arXiv id (without
    version), topic, submission time in [published_from, published_before)."""
    query = select(Paper).order_by(Paper.published.desc(), Paper.arxiv_id.desc()).limit(limit)
    if arxiv_id is not None:
        query = query.where(Paper.arxiv_id == arxiv_id)
    if topic_id is not None:
        linked = select(TopicPaper.paper_id).where(TopicPaper.topic_id == topic_id)
        query = query.where(Paper.id.in_(linked))
    if published_from is not None:
        query = query.where(Paper.published >= published_from)
    if published_before is not None:
        query = query.where(Paper.published < published_before)
    return list(session.scalars(query))
