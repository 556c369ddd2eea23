"""Summaries: one sentence per (paper, language), stored when it passes the checks."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Paper, Summary


def summaries_of(session: Session, arxiv_ids: Iterable[str], language: str) -> dict[str, str]:
    """The stored summaries in `language` of these papers, by arXiv id."""
    ids = sorted(set(arxiv_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Paper.arxiv_id, Summary.text)
        .join(Summary, Summary.paper_id == Paper.id)
        .where(Paper.arxiv_id.in_(ids), Summary.language == language)
    )
    return {arxiv_id: text for arxiv_id, text in rows}


def save_summary(session: Session, paper_id: int, language: str, provider: str, text: str) -> bool:
    """Store a paper's summary in `language`; False when one is there already (another process
    storing the same pair first wins: a summary is made once)."""
    try:
        with session.begin_nested():
            session.add(Summary(paper_id=paper_id, language=language, provider=provider, text=text))
    except IntegrityError:
        return False
    return True
