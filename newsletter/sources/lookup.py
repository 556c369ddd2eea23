"""Finding the arXiv papers that seeds name (`intake.seeds`): by arXiv id, by DOI, by title.

- an arXiv id (an `eprint` field, a typed id or link) is asked of arXiv with `id_list`, many
  ids a request (`ArxivSource.by_ids`); one arXiv does not return is not found;
- a DOI is looked up among the papers stored already (`stored_dois`): arXiv's API has no DOI
  field to search (its fields are ti, au, abs, co, jr, cat, rn, id and all), so a DOI that no
  stored paper carries falls back to the entry's title;
- a title is searched as a phrase in titles (`ti:"..."`), and a result counts only when its
  title is the same once case, accents, punctuation and LaTeX are set aside; two such
  papers make the entry ambiguous, and neither is taken.

Requests go through the one `ArxivSource`, so arXiv's 3-second rule holds across them all. A
request that fails marks the entries it was for, never the others.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from newsletter.errors import FetchError
from newsletter.intake.seeds import Seed, normalised_title
from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.papers import FetchedPaper

TITLE_CANDIDATES = 10
"""Results of a title search compared with the title: exact matches are near the top."""


class Outcome(enum.StrEnum):
    matched = "matched"
    not_found = "not found"
    ambiguous = "ambiguous"
    invalid = "invalid"
    """Not a paper we can look for (the intake's `SeedProblem`s)."""
    failed = "failed"
    """arXiv did not answer: try again later."""
    skipped = "not looked at"
    """Past what one go may ask of arXiv (`daily.seeds.LookupLimit`): send it again."""


@dataclass(frozen=True)
class SeedMatch:
    label: str
    outcome: Outcome
    arxiv_id: str | None = None
    """The paper found (matched), stored already or in `paper`."""
    paper: FetchedPaper | None = None
    """What arXiv sent for it; None when the paper was stored already."""
    how: str = ""
    """`arXiv id`, `DOI` or `title`."""
    detail: str = ""


def match_seeds(
    source: ArxivSource,
    seeds: Sequence[Seed],
    is_stored: Callable[[str], bool],
    stored_dois: Mapping[str, str],
) -> list[SeedMatch]:
    """Each seed's match, in the seeds' order. `is_stored(arxiv_id)` says a paper needs no
    request; `stored_dois` maps each stored paper's DOI, lower case, to its arXiv id."""
    wanted = [s.arxiv_id for s in seeds if s.arxiv_id and not is_stored(s.arxiv_id)]
    fetched: dict[str, FetchedPaper] = {}
    fetch_error = None
    try:
        fetched = {paper.arxiv_id: paper for paper in source.by_ids(wanted)}
    except FetchError as error:
        fetch_error = str(error)
    titles = _TitleSearch(source)
    matches = []
    for seed in seeds:
        if seed.arxiv_id:
            if is_stored(seed.arxiv_id) or seed.arxiv_id in fetched:
                found = fetched.get(seed.arxiv_id)
                matches.append(_matched(seed, seed.arxiv_id, found, "arXiv id"))
            elif fetch_error is not None:
                matches.append(SeedMatch(seed.label, Outcome.failed, detail=fetch_error))
            else:
                detail = f"arXiv has no paper {seed.arxiv_id}"
                matches.append(SeedMatch(seed.label, Outcome.not_found, detail=detail))
        elif seed.doi and seed.doi.lower() in stored_dois:
            matches.append(_matched(seed, stored_dois[seed.doi.lower()], None, "DOI"))
        elif seed.title:
            matches.append(titles.match(seed))
        else:
            detail = f"no stored paper has the DOI {seed.doi}, and arXiv cannot search by DOI"
            matches.append(SeedMatch(seed.label, Outcome.not_found, detail=detail))
    return matches


def _matched(seed: Seed, arxiv_id: str, paper: FetchedPaper | None, how: str) -> SeedMatch:
    return SeedMatch(seed.label, Outcome.matched, arxiv_id, paper, how)


class _TitleSearch:
    """Title searches, each title asked once however many entries carry it."""

    def __init__(self, source: ArxivSource) -> None:
        self.source = source
        self.answers: dict[str, list[FetchedPaper] | FetchError] = {}

    def match(self, seed: Seed) -> SeedMatch:
        wanted = normalised_title(seed.title or "")
        if not wanted:
            return SeedMatch(seed.label, Outcome.invalid, detail="its title has no words")
        if wanted not in self.answers:
            self.answers[wanted] = self._search(seed.title or "", wanted)
        answer = self.answers[wanted]
        if isinstance(answer, FetchError):
            return SeedMatch(seed.label, Outcome.failed, detail=str(answer))
        if len(answer) == 1:
            return _matched(seed, answer[0].arxiv_id, answer[0], "title")
        if answer:
            ids = ", ".join(paper.arxiv_id for paper in answer)
            detail = f"several arXiv papers have this title ({ids}): name one by its id"
            return SeedMatch(seed.label, Outcome.ambiguous, detail=detail)
        doi = f"no stored paper has the DOI {seed.doi}, and " if seed.doi else ""
        detail = f"{doi}no arXiv paper has exactly this title"
        return SeedMatch(seed.label, Outcome.not_found, detail=detail)

    def _search(self, title: str, wanted: str) -> list[FetchedPaper] | FetchError:
        # arXiv cannot escape a quote inside a phrase: the words alone are searched.
        phrase = " ".join(title.replace('"', " ").replace("\\", " ").split())
        try:
            _total, papers = self.source.probe(f'ti:"{phrase}"', limit=TITLE_CANDIDATES)
        except FetchError as error:
            return error
        same = {p.arxiv_id: p for p in papers if normalised_title(p.title) == wanted}
        return list(same.values())
