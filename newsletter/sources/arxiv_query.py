"""A topic as an arXiv API query: its phrases and categories, each quoted so that no keyword
can change the query's structure, or a raw query as the operator wrote it; and the followed
authors as a few `au:` queries."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote_plus

from newsletter.authors import parse_follow
from newsletter.errors import InvalidInput

MAX_AUTHOR_QUERY = 2_000
"""Most characters of one `au:` query once URL-encoded, so that a request stays well under
what servers and proxies take in a URL (8 KB is common), whatever the names."""


def build_query(
    keywords: Sequence[str] = (),
    categories: Sequence[str] = (),
    excludes: Sequence[str] = (),
    raw_query: str | None = None,
) -> str:
    """The arXiv `search_query` of a topic.

    Keywords are searched in title and abstract (`ti:`/`abs:`), never unfielded: an unfielded
    term matches author names and comments too. An expert's `raw_query` is used as written;
    given together with keywords, a paper matching either belongs to the topic. Categories
    narrow the result, excluded phrases remove papers whose title or abstract mention them.

    Example: build_query(["vision language model", "VLM"], ["cs.CV"]) ==
    '(ti:"vision language model" OR abs:"vision language model" OR ti:VLM OR abs:VLM)
    AND (cat:cs.CV)'
    """
    raw_query = (raw_query or "").strip()
    keyword_terms = _field_terms(keywords)
    if raw_query and keyword_terms:
        parts = [f"(({raw_query}) OR {keyword_terms})"]
    elif raw_query:
        parts = [f"({raw_query})"]
    elif keyword_terms:
        parts = [f"({keyword_terms})"]
    else:
        raise InvalidInput(
            "a topic needs keywords (searched in title and abstract) or a raw arXiv query"
        )
    category_terms = [_category_term(category) for category in categories if category.strip()]
    if category_terms:
        parts.append(f"AND ({' OR '.join(category_terms)})")
    exclude_terms = _field_terms(excludes)
    if exclude_terms:
        parts.append(f"ANDNOT ({exclude_terms})")
    return " ".join(parts)


_BARE_TERM = re.compile(r"[\w.]+")


_OPERATORS = {"AND", "OR", "ANDNOT", "NOT"}


_CATEGORY = re.compile(r"[A-Za-z-]+(\.[A-Za-z-]+|\.\*)?")


def _field_terms(phrases: Sequence[str]) -> str:
    terms = []
    for phrase in phrases:
        # arXiv has no way to escape a double quote inside a phrase: drop it; and a backslash,
        # which could escape the closing quote (topics.TopicSpec drops both before storing).
        text = " ".join(phrase.replace('"', " ").replace("\\", " ").split())
        if not text:
            continue
        if not _BARE_TERM.fullmatch(text) or text.upper() in _OPERATORS:
            text = f'"{text}"'
        terms += [f"ti:{text}", f"abs:{text}"]
    return " OR ".join(terms)


def _category_term(category: str) -> str:
    category = category.strip()
    if not _CATEGORY.fullmatch(category):
        raise InvalidInput(f"{category!r} is not an arXiv category (like cs.CV or hep-th)")
    return f"cat:{category}"


def author_term(name: str) -> str:
    """The `au:` term that finds a followed person's papers: surname, then the first initial,
    joined by `_` (arXiv's way of writing one name in a term, as in `au:del_maestro`).

    Surname and initial, not the whole name: arXiv lists one person as `Kaiming He`, `K. He`
    or `Kaiming M. He`, and `au:he_k` finds them all. The few others it brings (a `Kun He`)
    are left out by `authors`' matching, which decides what is stored.

    Example: author_term("Adrian Del Maestro") == "au:del_maestro_a"
    """
    parsed = parse_follow(name)
    words = [re.sub(r"[^\w]+", "_", word).strip("_") for word in parsed.surname]
    return f"au:{'_'.join(word for word in words if word)}_{parsed.given[0].text[0]}"


def author_queries(names: Iterable[str], batch: int) -> list[str]:
    """The followed `names` as few arXiv queries as can be: their `au:` terms joined by OR, at
    most `batch` terms in one query and at most `MAX_AUTHOR_QUERY` characters in its URL.
    Names that share a term (`Kaiming He`, `K. He`) ask once; a name that cannot be followed
    is left out (the intake refuses them before they are stored).

    Example: author_queries(["Kaiming He", "K. He", "Adrian Del Maestro"], 25) ==
    ["au:del_maestro_a OR au:he_k"]
    """
    terms: set[str] = set()
    for name in names:
        try:
            terms.add(author_term(name))
        except InvalidInput:
            continue
    queries: list[str] = []
    current: list[str] = []
    for term in sorted(terms):
        longer = " OR ".join([*current, term])
        if current and (len(current) >= batch or len(quote_plus(longer)) > MAX_AUTHOR_QUERY):
            queries.append(" OR ".join(current))
            current = []
        current.append(term)
    if current:
        queries.append(" OR ".join(current))
    return queries
