"""The size ladder: how much of a digest an email shows so that its HTML stays small enough.

Gmail clips an HTML part above about 102 KB, hiding the rest (the unsubscribe link among it)
behind "View entire message". An email body is kept under `HTML_SIZE_LIMIT`: when the full
digest is bigger, the first of the `FIT_STEPS` that fits is used; the steps shorten the
abstracts, then list the later papers by title alone, then fewer titles with "N more on the
web". `fit_content` applies a step to a digest; `first_that_fits` finds the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.textfmt import shorten

HTML_SIZE_LIMIT = 100_000
"""Bytes of HTML an email may have: Gmail clips above about 102 KB (102,400 bytes)."""
PERSONAL_RESERVE = 1_000
"""Bytes kept free for what `personalise` adds per subscriber (its links, ~100 bytes each)."""


@dataclass(frozen=True)
class Fit:
    """How much of each paper an email shows: one step of the ladder that keeps it small."""

    abstract_chars: int | None = None
    """Abstracts (and their translations) cut to about this many characters; None: whole."""
    cards: int | None = None
    """Papers per topic shown with authors and abstract; the rest by title. None: all."""
    listed: int | None = None
    """Papers per topic listed at all (cards and titles); the rest are "N more on the web"."""


FIT_STEPS: tuple[Fit, ...] = (
    Fit(),
    Fit(abstract_chars=900),
    Fit(abstract_chars=600),
    Fit(abstract_chars=350),
    Fit(abstract_chars=350, cards=5),
    Fit(abstract_chars=350, cards=3),
    Fit(abstract_chars=350, cards=3, listed=10),
    Fit(abstract_chars=350, cards=2, listed=8),
    Fit(abstract_chars=350, cards=1, listed=6),
    Fit(abstract_chars=250, cards=1, listed=4),
    Fit(cards=0, listed=3),
    Fit(cards=0, listed=1),
    Fit(cards=0, listed=0),
)
"""From the whole digest to its bare outline, each step showing less than the one before.

Measured with 10 topics of 20 papers (1,500-character abstracts): the whole digest is ~565 KB,
`Fit(350, cards=2, listed=8)` ~97 KB (the one used), the outline (topics and counts) ~44 KB.
"""


def first_that_fits(
    html_at: Callable[[Fit, int], str | None], budget: int
) -> tuple[Fit, str] | None:
    """The first step of `FIT_STEPS` whose HTML is within `budget` bytes, with that HTML;
    None when not even the last one is.

    `html_at(step, budget)` gives the HTML at a step, or None when it is over `budget`.
    """
    found = None
    body_html = html_at(FIT_STEPS[0], budget)
    if body_html is not None:
        return FIT_STEPS[0], body_html
    # Each step shows less than the one before. A digest too big as a whole mostly fits after
    # a step or two: try steps 1, 2, 4, 8, then bisect between the last that did not fit and
    # the first that did.
    low, high, step = 1, len(FIT_STEPS) - 1, 1
    while step <= high:
        candidate = html_at(FIT_STEPS[step], budget)
        if candidate is not None:
            found, high = (FIT_STEPS[step], candidate), step - 1
            break
        low, step = step + 1, step * 2
    while low <= high:
        middle = (low + high) // 2
        candidate = html_at(FIT_STEPS[middle], budget)
        if candidate is not None:
            found, high = (FIT_STEPS[middle], candidate), middle - 1
        else:
            low = middle + 1
    return found


def fit_content(content: DigestContent, fit: Fit) -> DigestContent:
    """The content as `fit` shows it: abstracts cut, later papers by title, the rest counted."""
    if fit == Fit():
        return content
    return replace(
        content, sections=tuple(_fit_section(section, fit) for section in content.sections)
    )


def _fit_section(section: TopicSection, fit: Fit) -> TopicSection:
    listed = section.papers + section.titles_only
    if fit.listed is not None:
        listed = listed[: fit.listed]
    count = len(listed) if fit.cards is None else min(fit.cards, len(listed))
    cards = listed[:count]
    if fit.abstract_chars is not None:
        cards = tuple(shortened(paper, fit.abstract_chars) for paper in cards)
    return replace(section, papers=cards, titles_only=listed[count:])


@lru_cache(maxsize=8192)  # the same papers are shortened for many segments
def shortened(paper: PaperItem, limit: int) -> PaperItem:
    translated = paper.abstract_translated
    return replace(
        paper,
        abstract=shorten(paper.abstract, limit),
        abstract_translated=shorten(translated, limit) if translated else translated,
    )
