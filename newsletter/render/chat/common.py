"""What a digest shows in a chat channel, as plain pieces (`ChatDigest`), and how a platform's
renderer (`ChatRenderer`) turns them into posts under its limits.

The pieces are the segment's content, as a person with the same topics and language is sent
it: per topic, each paper's title (and its translation), authors, its one-sentence summary, its
abstract (translated when a translation is stored) trimmed to `ABSTRACT_CHARS` with the link
to read on, its arXiv, PDF and code links; then the titles listed without a card, the papers
left for the web edition, and the code released since. Every text is as arXiv or a translator
wrote it, LaTeX made readable: each renderer escapes it for its own markup.

A digest is split into posts at unit boundaries only (a unit is the digest's heading, a paper's
card, a few title lines, a note): a card is never cut in half, and every unit fits a post of
its own (texts are trimmed so it does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.errors import RenderError
from newsletter.render.email import email_subject
from newsletter.render.environment import count_noun
from newsletter.sources.codelinks import link_label
from newsletter.textfmt import authors_line, http_url, readable_paragraphs, readable_title, shorten

ABSTRACT_CHARS = 600
"""An abstract's characters in a chat card (the whole is one click away)."""
TITLE_CHARS = 240
"""A title's characters (Discord's embed titles stop at 256)."""
LINES_PER_UNIT = 10
"""Title lines grouped in one unit."""

Payload = dict[str, Any]


@dataclass(frozen=True)
class ChatPaper:
    """One paper as a chat card shows it: plain text (the renderer escapes it)."""

    title: str
    url: str
    title_translated: str | None
    byline: str
    summary: str | None
    abstract: str
    note: str | None
    links: tuple[tuple[str, str], ...]
    """(label, URL): arXiv, then PDF and code when the paper has them."""
    also_in: tuple[str, ...]


@dataclass(frozen=True)
class ChatSection:
    heading: str
    """`MLLM · 12 new`."""
    cards: tuple[ChatPaper, ...]
    lines: tuple[ChatPaper, ...]
    """Listed by title alone (as the email lists them)."""
    more: str | None
    """`3 more papers in MLLM on the web`, with `more_url`; None when all are shown."""
    more_url: str | None


@dataclass(frozen=True)
class ChatDigest:
    heading: str
    """The email's subject: `arXiv digest 2026-11-27: 14 new papers in MLLM and SLAM`."""
    web_url: str | None
    """The digest's web edition (None without NEWSLETTER_BASE_URL)."""
    sections: tuple[ChatSection, ...]


def link_url(url: str | None) -> str:
    """An http(s) URL safe inside any platform's link markup: the characters markdown, Slack
    and HTML give a meaning to (spaces, quotes, brackets, `<>|`) percent-encoded; "" for
    anything else (a `javascript:` link never reaches a channel)."""
    checked = http_url(url)
    return quote(checked, safe=":/?#@!$&*+,;=%~-._") if checked else ""


def chat_paper(paper: PaperItem) -> ChatPaper:
    title = shorten(readable_title(paper.title), TITLE_CHARS)
    translated = paper.title_translated and shorten(
        readable_title(paper.title_translated), TITLE_CHARS
    )
    abstract = " ".join(readable_paragraphs(paper.abstract_translated or paper.abstract))
    summary = " ".join(readable_paragraphs(paper.summary)) if paper.summary else None
    links = [("arXiv", link_url(paper.abs_url)), ("PDF", link_url(paper.pdf_url))]
    code = link_url(paper.code_url)
    if code:
        links.append((link_label(code), code))
    byline = " · ".join(
        part for part in (paper.published.date().isoformat(), authors_line(paper.authors)) if part
    )
    return ChatPaper(
        title=title,
        url=links[0][1],
        title_translated=translated or None,
        byline=byline,
        summary=summary and shorten(summary, ABSTRACT_CHARS),
        abstract=shorten(abstract, ABSTRACT_CHARS),
        note=None if paper.abstract_translated else paper.translation_note,
        links=tuple((label, url) for label, url in links if url),
        also_in=paper.also_in,
    )


def chat_digest(content: DigestContent) -> ChatDigest:
    web_url = link_url(content.web_url) or None
    sections = [_section(section, web_url) for section in content.sections if section.total]
    if content.code_released:
        news = tuple(chat_paper(item.paper) for item in content.code_released)
        sections.append(ChatSection("Code released since", (), news, None, None))
    return ChatDigest(email_subject(content), web_url, tuple(sections))


def _section(section: TopicSection, web_url: str | None) -> ChatSection:
    more = None
    if section.more > 0:
        more = f"{count_noun(section.more, 'more paper')} in {section.name}"
        more += " on the web" if web_url else ""
    return ChatSection(
        heading=f"{section.name} · {section.total} new",
        cards=tuple(chat_paper(paper) for paper in section.papers),
        lines=tuple(chat_paper(paper) for paper in section.titles_only),
        more=more,
        more_url=f"{web_url}#{section.slug}" if web_url and more else None,
    )


class ChatRenderer:
    """A platform's posts: its units (heading, a section's first card with its heading, cards,
    title lines, notes, the link to the web edition) packed into as few posts as its limits
    allow. Subclasses say how each unit looks (`heading`, `card`, …), how units make a post
    (`payload`) and whether a post is within the limits (`fits`)."""

    def posts(self, digest: ChatDigest) -> list[Payload]:
        return packed(list(self.units(digest)), self.payload, self.fits)

    def units(self, digest: ChatDigest) -> Iterator[list]:
        yield self.heading(digest)
        for section in digest.sections:
            head = self.section_heading(section)
            for paper in section.cards:
                yield head + self.card(paper)
                head = []
            for start in range(0, len(section.lines), LINES_PER_UNIT):
                yield head + self.lines(section.lines[start : start + LINES_PER_UNIT])
                head = []
            if section.more:
                yield head + self.note(section.more, section.more_url)
                head = []
            if head:
                yield head
        if digest.web_url:
            yield self.note("The whole digest on the web", digest.web_url)

    def notice(self, text: str) -> Payload:
        """A post of one line of text (`channels test`)."""
        return self.payload([self.note(text, None)])

    # What each platform says for itself:
    def heading(self, digest: ChatDigest) -> list: ...
    def section_heading(self, section: ChatSection) -> list: ...
    def card(self, paper: ChatPaper) -> list: ...
    def lines(self, papers: Sequence[ChatPaper]) -> list: ...
    def note(self, text: str, url: str | None) -> list: ...
    def payload(self, units: list[list]) -> Payload: ...
    def fits(self, payload: Payload) -> bool: ...


def packed(
    units: Sequence[list], payload: Callable[[list[list]], Payload], fits: Callable
) -> list[Payload]:
    """Units in order, as few posts as `fits` allows, a unit never split between two."""
    posts: list[Payload] = []
    current: list[list] = []
    for unit in units:
        if fits(payload([*current, unit])):
            current.append(unit)
            continue
        if not current or not fits(payload([unit])):
            raise RenderError("a chat post's unit is over its platform's limits on its own")
        posts.append(payload(current))
        current = [unit]
    if current:
        posts.append(payload(current))
    return posts


def plain_card(paper: ChatPaper) -> list[str]:
    """A card's lines of plain text after its title, shared by the renderers that show text as
    it is (the title and links are each renderer's)."""
    lines = [paper.title_translated] if paper.title_translated else []
    lines.append(paper.byline)
    if paper.summary:
        lines.append(f"In short: {paper.summary}")
    lines.append(paper.abstract)
    if paper.note:
        lines.append(f"({paper.note})")
    if paper.also_in:
        lines.append(f"Also in: {', '.join(paper.also_in)}")
    return lines
