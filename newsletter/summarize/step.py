"""The summary step of the daily job: the (paper, language) pairs a digest's readers are shown
that have no summary yet, each asked for once, within NEWSLETTER_SUMMARIZER_BUDGET, stored.

Like translations, requests are bounded by papers × languages, never by subscribers, and a
pair once stored is never asked for again. Unlike them, English readers are summarized too,
and nothing is said to readers about a summary not made: the card has none this time, and the
next run asks again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.digest.edition import Edition
from newsletter.digest.segments import Readers, SegmentKey
from newsletter.languages import summary_language
from newsletter.summarize import summarizer_from_settings
from newsletter.summarize.summarizer import CheckedSummarizer, Summarizer
from newsletter.translate import Budget, Outcome, SourceText, system_names
from newsletter.translate.base import batches
from newsletter.translate.pipeline import report_line

logger = logging.getLogger(__name__)

STORE_EVERY = 8
"""Summaries stored together: an interrupted run keeps what it made, in few transactions."""


@dataclass(frozen=True)
class SummaryWork:
    """One paper to summarize in one language."""

    paper_id: int
    arxiv_id: str
    language: str
    title: str
    abstract: str


@dataclass
class SummaryReport:
    made: Counter[str] = field(default_factory=Counter)
    """Papers whose summary was stored, by language."""
    failed: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    """Papers left without a summary this time, by (arXiv id, language)."""
    requests: int = 0
    """Calls to the summarizer."""

    def summary(self) -> str:
        """`Summarized 12 paper(s) (de 6, en 6); 2 without a summary: …`, or "" for nothing."""
        return report_line("Summarized {} paper(s)", self.made, self.failed, "without a summary")


def summarize_for_digest(
    settings: Settings,
    edition: Edition,
    readers: Readers,
    summarizer: Summarizer | None = None,
) -> SummaryReport:
    """Summarize what the edition's emails show, in each language its readers read, that has
    no summary yet, within NEWSLETTER_SUMMARIZER_BUDGET. Never raises for the summarizer's
    failures: what failed is left without a summary (and logged, in one line)."""
    if settings.summarizer == "none" and summarizer is None:
        return SummaryReport()
    with session_scope(settings) as session:
        work = pending(session, shown_by_language(edition, readers.groups))
    if not work:
        return SummaryReport()
    summarizer = summarizer or summarizer_from_settings(
        settings, Budget(settings.summarizer_budget)
    )
    if summarizer is None:  # the settings' Literal allows no other case
        return SummaryReport()
    report = summarize_work(settings, summarizer, work)
    if report.failed:
        logger.warning("summaries: %s", report.summary())
    elif report.made:
        logger.info("summaries: %s", report.summary())
    return report


def shown_by_language(edition: Edition, keys: Iterable[SegmentKey]) -> dict[str, list[str]]:
    """The arXiv ids the edition's emails to these segments show, by summary language."""
    wanted: dict[str, list[str]] = {}
    for topic_ids, language, followed, _code_since in keys:
        wanted.setdefault(summary_language(language), []).extend(edition.shown(topic_ids, followed))
    return wanted


def pending(session: Session, wanted: dict[str, list[str]]) -> list[SummaryWork]:
    """The work left for these (language → arXiv ids), stored summaries skipped: paper by
    paper in the order shown, each in every language, so that a budget spent leaves the
    papers lower down without one rather than a whole language."""
    found: dict[str, list[SummaryWork]] = {}
    for language, arxiv_ids in sorted(wanted.items()):
        ordered = list(dict.fromkeys(arxiv_ids))
        papers = {paper.arxiv_id: paper for paper in store.papers_by_arxiv_ids(session, ordered)}
        stored = store.summaries_of(session, ordered, language)
        for arxiv_id in ordered:
            paper = papers.get(arxiv_id)
            if paper is not None and arxiv_id not in stored:
                work = SummaryWork(paper.id, arxiv_id, language, paper.title, paper.abstract)
                found.setdefault(arxiv_id, []).append(work)
    order = {
        arxiv_id: place
        for place, arxiv_id in enumerate(dict.fromkeys(a for ids in wanted.values() for a in ids))
    }
    return [item for arxiv_id in sorted(found, key=order.__getitem__) for item in found[arxiv_id]]


def summarize_work(
    settings: Settings, summarizer: Summarizer, work: Iterable[SummaryWork]
) -> SummaryReport:
    """Ask for each summary in turn; store them a few at a time as they come."""
    checked = CheckedSummarizer(summarizer)
    report = SummaryReport()
    for chunk in batches(list(work), STORE_EVERY):
        outcomes = [
            checked.summarize(
                SourceText(item.paper_id, item.abstract, system_names(item.title)), item.language
            )
            for item in chunk
        ]
        with session_scope(settings) as session:
            for item, outcome in zip(chunk, outcomes, strict=True):
                if outcome.text is None:
                    report.failed[(item.arxiv_id, item.language)] = outcome
                elif store.save_summary(
                    session, item.paper_id, item.language, summarizer.name, outcome.text
                ):
                    report.made[item.language] += 1
    report.requests = checked.requests
    return report
