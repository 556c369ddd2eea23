"""The translation step of the daily job and of `newsletter translate`: find the (paper, language)
pairs readers need, translate those not stored yet (per language, in batches), store each.

Requests are bounded by papers × languages, never by subscribers: a segment's language needs each
of its papers once, whoever reads it, and a pair once stored is never asked for again. A digest
needs the papers its emails show, in each language other than English its subscribers read.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.digest.content import TRANSLATION_NOTES
from newsletter.digest.edition import Edition
from newsletter.digest.segments import Readers, SegmentKey
from newsletter.errors import ConfigError, InvalidInput
from newsletter.models import Digest
from newsletter.translate import (
    Budget,
    CheckedTranslator,
    Outcome,
    SourceText,
    Translator,
    system_names,
    translation_language,
    translator_from_settings,
)
from newsletter.translate.base import batches
from newsletter.translate.pipeline import report_line

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Work:
    """One paper to translate into one language: its abstract, its title, or both."""

    paper_id: int
    arxiv_id: str
    language: str
    title: str
    abstract: str
    abstract_needed: bool
    title_needed: bool


@dataclass
class TranslationReport:
    translated: Counter[str] = field(default_factory=Counter)
    """Papers whose translation was stored, by language."""
    failed: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    """Abstracts left in English this time, by (arXiv id, language)."""
    requests: int = 0
    """Calls to the translator (batches; one HTTP request or more each, by provider)."""

    @property
    def notes(self) -> dict[tuple[str, str], str]:
        """What readers are told about each abstract left in English."""
        return {
            key: TRANSLATION_NOTES[outcome.failure.value]
            for key, outcome in self.failed.items()
            if outcome.failure is not None
        }

    def summary(self) -> str:
        """`Translated 12 abstracts (de 6, zh 6); 2 left in English: …`, or "" for nothing."""
        return report_line(
            "Translated {} abstract(s)", self.translated, self.failed, "left in English"
        )


# ---------------------------------------------------------------- what is needed


def translate_for_digest(
    settings: Settings,
    edition: Edition,
    readers: Readers,
    previous: Digest | None,
    translator: Translator | None = None,
) -> TranslationReport:
    """Translate what the edition's emails show and is not stored yet, within the time budget.

    `readers` are the digest's, streamed once for the whole send. The `previous` digest's
    papers come after, for the segments that had readers on its day (noted on that same
    stream), so abstracts that failed yesterday are translated today. Nothing here raises for
    a translator's failure: what failed is reported (and shown in English, with a note).
    """
    if settings.translator == "none" and translator is None:
        return TranslationReport()
    with session_scope(settings) as session:
        wanted = shown_by_language(edition, readers.groups)
        if previous is not None:
            if readers.earlier != previous.issue_date:
                raise ValueError(f"the readers were not streamed for {previous.issue_date}")
            earlier = edition.for_digest(session, previous)
            for language, arxiv_ids in shown_by_language(earlier, readers.earlier_keys).items():
                wanted.setdefault(language, []).extend(arxiv_ids)
        work = pending(session, wanted, titles=settings.translate_titles)
    if not work:
        return TranslationReport()
    translator = translator or translator_from_settings(
        settings, Budget(settings.translator_budget)
    )
    report = translate_work(settings, translator, work)
    if report.failed:
        logger.warning("translation: %s", report.summary())
    return report


def shown_by_language(edition: Edition, keys: Iterable[SegmentKey]) -> dict[str, list[str]]:
    """The arXiv ids the edition's emails to these segments show, by translation language
    (English left out)."""
    wanted: dict[str, list[str]] = {}
    for topic_ids, language, followed, _code_since in keys:
        target = translation_language(language)
        if target is not None:
            wanted.setdefault(target, []).extend(edition.shown(topic_ids, followed))
    return wanted


def pending_for_stored(
    settings: Settings, language: str | None = None, since: datetime | None = None
) -> list[Work]:
    """Stored papers lacking a translation: into `language` (any paper), or else into each
    language active subscribers read (papers of the topics they follow); newest first."""
    with session_scope(settings) as session:
        if language is not None:
            target = translation_language(language)
            if target is None:
                raise InvalidInput(f"{language!r} is English: there is nothing to translate")
            topics: dict[str, set[int] | None] = {target: None}
        else:
            topics = {}
            for tag, topic_ids in store.topics_by_subscriber_language(session).items():
                target = translation_language(tag)
                if target is not None:
                    topics[target] = (topics.get(target) or set()) | topic_ids
        wanted = {
            target: [
                paper.arxiv_id
                for paper in store.papers_missing_translation(
                    session,
                    target,
                    since=since,
                    topic_ids=topic_ids,
                    titles=settings.translate_titles,
                )
            ]
            for target, topic_ids in sorted(topics.items())
        }
        return pending(session, wanted, titles=settings.translate_titles)


def pending(session: Session, wanted: dict[str, list[str]], *, titles: bool) -> list[Work]:
    """The work left for these (language → arXiv ids): what is stored already is skipped."""
    work: list[Work] = []
    for language, arxiv_ids in wanted.items():
        ordered = list(dict.fromkeys(arxiv_ids))
        papers = {paper.arxiv_id: paper for paper in store.papers_by_arxiv_ids(session, ordered)}
        stored = store.translations_of(session, ordered, language)
        for arxiv_id in ordered:
            paper, row = papers.get(arxiv_id), stored.get(arxiv_id)
            if paper is None:
                continue
            title_needed = titles and (row is None or row.title is None)
            if row is None or title_needed:
                work.append(
                    Work(
                        paper.id,
                        arxiv_id,
                        language,
                        paper.title,
                        paper.abstract,
                        abstract_needed=row is None,
                        title_needed=title_needed,
                    )
                )
    return work


# ---------------------------------------------------------------- doing it


def require_translator(settings: Settings) -> Translator:
    """The configured translator, with no time budget (for commands run by hand)."""
    translator = translator_from_settings(settings)
    if translator is None:
        raise ConfigError(
            "no translator is configured: set NEWSLETTER_TRANSLATOR to google, openai, deepl"
            " or libretranslate (see the README's Translation section)"
        )
    return translator


def translate_work(
    settings: Settings,
    translator: Translator,
    work: Iterable[Work],
    progress: Progress | None = None,
) -> TranslationReport:
    """Translate the work, language by language, a batch at a time; store each batch at once,
    so an interrupted run keeps what it did."""
    checked = CheckedTranslator(translator, settings.translator_batch_size)
    report = TranslationReport()
    by_language: dict[str, list[Work]] = {}
    for item in work:
        by_language.setdefault(item.language, []).append(item)
    for language, items in by_language.items():
        for batch in batches(items, settings.translator_batch_size):
            outcomes = {o.key: o for o in checked.translate(_sources(batch), language)}
            _store(settings, translator.name, batch, outcomes, report)
            if progress is not None:
                progress(len(batch))
    report.requests = checked.requests
    return report


def _sources(batch: list[Work]) -> list[SourceText]:
    sources = []
    for item in batch:
        names = system_names(item.title)
        if item.abstract_needed:
            sources.append(SourceText((item.paper_id, "abstract"), item.abstract, names))
        if item.title_needed:
            sources.append(SourceText((item.paper_id, "title"), item.title, names))
    return sources


def _store(
    settings: Settings,
    provider: str,
    batch: list[Work],
    outcomes: dict,
    report: TranslationReport,
) -> None:
    with session_scope(settings) as session:
        for item in batch:
            abstract = outcomes.get((item.paper_id, "abstract"))
            title = outcomes.get((item.paper_id, "title"))
            if abstract is not None and abstract.text is None:
                report.failed[(item.arxiv_id, item.language)] = abstract
                continue
            stored = store.save_translation(
                session,
                item.paper_id,
                item.language,
                provider,
                abstract=abstract.text if abstract else None,
                title=title.text if title else None,
            )
            if stored and abstract is not None:
                report.translated[item.language] += 1
