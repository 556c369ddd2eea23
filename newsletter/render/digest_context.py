"""What every digest template is given, the email's (HTML and text) and the web page's alike:
the content, its language and writing direction, and the table of contents.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.digest.content import DigestContent, TopicSection
from newsletter.render.environment import count_noun

_RIGHT_TO_LEFT = {"ar", "arc", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "sd", "ur", "yi"}


@dataclass(frozen=True)
class ContentsRow:
    """One line of an issue's table of contents."""

    name: str
    anchor: str | None
    """The topic's section (`#slug`), when it has papers of its own."""
    summary: str
    """`5 papers`, `7 papers, 2 listed under MLLM`, `3 papers, listed under MLLM`, ..."""


def digest_context(content: DigestContent) -> dict[str, object]:
    """What the digest templates (email, text, web) are given besides filters."""
    return {
        "content": content,
        "lang": content.language,
        "direction": text_direction(content.language),
        "contents": table_of_contents(content),
        "topic_count": sum(1 for section in content.sections if section.total > 0),
    }


def text_direction(language: str) -> str:
    """`rtl` for languages written right to left (Arabic, Hebrew, Persian, ...), else `ltr`."""
    return "rtl" if language.split("-")[0].lower() in _RIGHT_TO_LEFT else "ltr"


def table_of_contents(content: DigestContent) -> list[ContentsRow]:
    """A row for each of the reader's topics, those without papers of their own too.

    A topic whose papers all appear under an earlier topic still counts them, and says where
    (`3 papers, listed under MLLM`), rather than claiming it has none.
    """
    rows = [
        ContentsRow(
            section.name, section.slug if section.total else None, _contents_summary(section)
        )
        for section in content.sections
    ]
    listed = {section.name for section in content.sections}
    rows += [
        ContentsRow(name, None, "no new papers")
        for name in content.topic_names
        if name not in listed
    ]
    return rows


def _contents_summary(section: TopicSection) -> str:
    if not section.matched:
        return "no new papers"
    matched = count_noun(section.matched, "paper")
    if not section.listed_under:
        return matched
    where = _and_join([name for name, _count in section.listed_under])
    if not section.total:
        return f"{matched}, listed under {where}"
    elsewhere = section.matched - section.total
    return f"{matched}, {elsewhere} listed under {where}"


def _and_join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
