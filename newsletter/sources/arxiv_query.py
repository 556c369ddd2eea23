"""A topic as an arXiv API query: its phrases and categories, each quoted so that no keyword
can change the query's structure, or a raw query as the operator wrote it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from newsletter.errors import InvalidInput


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
