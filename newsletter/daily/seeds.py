"""Seeding a reader's ranking with papers they already know: the seeds read from what they
typed or exported (`intake.seeds`) are matched to arXiv (`sources.lookup`), the papers found
are stored (once, like fetched ones, but linked to no topic: a seed is in no digest) and
marked as the reader's seeds. Shared by the CLI (`subscribers seed`, by address, unbounded)
and the reader's library page (by subscriber id, within a `LookupLimit` so a web request stays
short).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.daily.fetch import arxiv_source, paper_values
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.intake.seeds import Seed, SeedProblem
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.lookup import Outcome, SeedMatch, match_seeds


@dataclass(frozen=True)
class LookupLimit:
    """How much of arXiv one go may ask: entries past either count are reported `skipped`
    (not looked at), the others matched as usual. Entries that need no request (a paper or a
    DOI stored already) are never skipped."""

    ids: int
    """Entries whose arXiv id is asked of arXiv (batched, a request per page of ids)."""
    titles: int
    """Entries searched by title: one request each, 3 s apart."""


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
    return seed_subscriber(settings, subscriber_id, seeds, problems, source)


def seed_subscriber(
    settings: Settings,
    subscriber_id: int,
    seeds: list[Seed],
    problems: Sequence[SeedProblem] = (),
    source: ArxivSource | None = None,
    limit: LookupLimit | None = None,
) -> SeedReport:
    """`seed_reader` for a reader known by id; with `limit`, only so much is asked of arXiv.

    No session is held while arXiv is asked: the lookups take seconds.
    """
    with session_scope(settings) as session:
        named = [seed.arxiv_id for seed in seeds if seed.arxiv_id]
        stored = {paper.arxiv_id for paper in store.papers_by_arxiv_ids(session, named)}
        by_doi = store.papers_by_dois(session, [seed.doi for seed in seeds if seed.doi])
        stored_dois = {doi: paper.arxiv_id for doi, paper in by_doi.items()}
    looked_at, skipped = _within(limit, seeds, stored, stored_dois)
    source = source or arxiv_source(settings)
    matches = iter(match_seeds(source, looked_at, stored.__contains__, stored_dois))
    report = SeedReport()
    with session_scope(settings) as session:
        found: list[str] = []
        for seed in seeds:
            match = skipped.get(id(seed)) or _stored(session, next(matches))
            if match.outcome == Outcome.matched:
                found.append(match.arxiv_id)
            report.entries.append(match)
        paper_ids = [paper.id for paper in store.papers_by_arxiv_ids(session, found)]
        report.newly_marked = store.mark_seeds(session, subscriber_id, paper_ids)
    report.entries += [SeedMatch(p.label, Outcome.invalid, detail=p.reason) for p in problems]
    return report


def _stored(session: Session, match: SeedMatch) -> SeedMatch:
    """A match with arXiv's answer for a paper not stored yet: stored now, or failed."""
    if match.outcome == Outcome.matched and match.paper is not None:
        try:
            values = paper_values(match.paper)
            store.in_savepoint(session, partial(store.upsert_paper, session, values))
        except InvalidInput as error:
            detail = f"{match.arxiv_id}: not stored: {error}"
            return replace(match, outcome=Outcome.failed, detail=detail)
    return match


def _within(
    limit: LookupLimit | None,
    seeds: list[Seed],
    stored: set[str],
    stored_dois: dict[str, str],
) -> tuple[list[Seed], dict[int, SeedMatch]]:
    """The seeds to look up, in order, and the skipped ones' reports (by the seed's id())."""
    if limit is None:
        return seeds, {}
    looked_at: list[Seed] = []
    skipped: dict[int, SeedMatch] = {}
    ids = titles = 0
    for seed in seeds:
        if seed.arxiv_id:
            asks = seed.arxiv_id not in stored
            ids += asks
            over, what = asks and ids > limit.ids, f"at most {limit.ids} arXiv ids"
        else:
            asks = not (seed.doi and seed.doi.lower() in stored_dois)
            titles += asks
            over, what = asks and titles > limit.titles, f"at most {limit.titles} titles"
        if over:
            detail = f"not looked at: {what} are looked up in one go; send the rest again"
            skipped[id(seed)] = SeedMatch(seed.label, Outcome.skipped, detail=detail)
        else:
            looked_at.append(seed)
    return looked_at, skipped
