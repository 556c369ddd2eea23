"""Translations: one per (paper, language), stored when they pass the checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import (
    Paper,
    TopicPaper,
    Translation,
)


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
