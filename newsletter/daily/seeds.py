"""Seeding a reader's ranking with papers they already know: the seeds read from what they
typed or exported (`intake.seeds`) are matched to arXiv (`sources.lookup`), the papers found
are stored (once, like fetched ones, but linked to no topic: a seed is in no digest) and
marked as the reader's seeds. Shared by the CLI (`subscribers seed`) and whatever comes next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from newsletter import store
from newsletter.config import Settings
from newsletter.daily.fetch import arxiv_source, paper_values
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.intake.seeds import Seed, SeedProblem
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.lookup import Outcome, SeedMatch, match_seeds


@dataclass
class SeedReport:
    entries: list[SeedMatch] = field(default_factory=list)
    """Every entry given, with what became of it."""
    newly_marked: int = 0
    """Papers that were not the reader's seeds before."""

    @property
    def ok(self) -> bool:
        return all(entry.outcome == Outcome.matched for entry in self.entries)

    def count(self, outcome: Outcome) -> int:
        return sum(entry.outcome == outcome for entry in self.entries)


def seed_reader(
    settings: Settings,
    email: str,
    seeds: list[Seed],
    problems: Sequence[SeedProblem] = (),
    source: ArxivSource | None = None,
) -> SeedReport:
    """Match `seeds` to arXiv, store what is found and mark it as `email`'s seeds.

    UnknownSubscriber before any request when the address is not on the list.
    """
    with session_scope(settings) as session:
        subscriber_id = store.get_subscriber(session, email).id
        named = [seed.arxiv_id for seed in seeds if seed.arxiv_id]
        stored = {paper.arxiv_id for paper in store.papers_by_arxiv_ids(session, named)}
        by_doi = store.papers_by_dois(session, [seed.doi for seed in seeds if seed.doi])
        stored_dois = {doi: paper.arxiv_id for doi, paper in by_doi.items()}
    matches = match_seeds(source or arxiv_source(settings), seeds, stored.__contains__, stored_dois)
    report = SeedReport()
    with session_scope(settings) as session:
        found: list[str] = []
        for match in matches:
            if match.outcome == Outcome.matched and match.paper is not None:
                try:
                    values = paper_values(match.paper)
                    store.in_savepoint(session, partial(store.upsert_paper, session, values))
                except InvalidInput as error:
                    detail = f"{match.arxiv_id}: not stored: {error}"
                    match = replace(match, outcome=Outcome.failed, detail=detail)
            if match.outcome == Outcome.matched:
                found.append(match.arxiv_id)
            report.entries.append(match)
        paper_ids = [paper.id for paper in store.papers_by_arxiv_ids(session, found)]
        report.newly_marked = store.mark_seeds(session, subscriber_id, paper_ids)
    report.entries += [SeedMatch(p.label, Outcome.invalid, detail=p.reason) for p in problems]
    return report
