"""Paper cards, made once per process: each paper's HTML as a digest email shows it.

A paper is shown as a card (title, authors, abstract, links) or, lower down the size ladder, a
title line. Cards are most of a digest and the same papers are shown by many segments, so a
card goes through Jinja, MJML and the CSS inlining once per process (`PAPER_CARDS`), not once
per segment. A segment's document is rendered with a marker where each card goes
(`CardSlots`), and the cards are put in last (`fill_in`).
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache

from markupsafe import Markup

from newsletter.digest.content import PaperItem
from newsletter.errors import RenderError
from newsletter.render.environment import render_template
from newsletter.render.mjml import mjml_to_email

EMAIL_CARD_TEMPLATE = "email/paper_card.html.j2"
EMAIL_LINE_TEMPLATE = "email/paper_line.html.j2"
TEXT_CARD_TEMPLATE = "email/paper_card.txt.j2"
TEXT_LINE_TEMPLATE = "email/paper_line.txt.j2"
TEXT_NUMBER_WIDTH = 4
"""The text pieces' first characters, which the digest fills with the paper's number (`%2d. `)."""
CARDS_DOCUMENT_TEMPLATE = "email/paper_cards.mjml.j2"
"""A batch of cards rendered as the digest renders them, each after its marker."""

CardKey = tuple[str, PaperItem, str]
"""(template, paper, language): what a paper's HTML in a digest depends on."""

CARD_MARKER = re.compile(r'<i class="nl-piece-(\d+)"></i>')
"""Where a card goes. Paper text cannot make one: its "<" is always escaped. (`nl-piece`: the
name cards had before; tests/test_render.py checks that none is left in an email.)"""


_NONCE = secrets.token_hex(8)
PAPER_PLACEHOLDER = re.compile(rf"__NEWSLETTER_PAPER_{_NONCE}_([0-9A-Za-z./-]+)__")
"""Stands for a reader's own link to a paper's actions (save, more like this, less like this)
in a card: cards are made once for every reader, the link is each reader's own. It carries a
random part made when the process starts, so no paper's text can hold one (an abstract that
did would break its cards or take the reader's link)."""


def paper_placeholder(paper: PaperItem) -> str:
    return f"__NEWSLETTER_PAPER_{_NONCE}_{paper.arxiv_id}__"


def card_marker(number: int) -> Markup:
    return Markup(f'<i class="nl-piece-{number}"></i>')  # noqa: S704 (an int, no input)


def card_key(template_name: str, paper: PaperItem, language: str) -> CardKey:
    # A paper shown in English (no translation, no summary) looks the same in every segment's
    # language.
    translated = paper.title_translated or paper.abstract_translated or paper.summary
    return template_name, paper, language if translated else ""


class CardSlots:
    """The digest template's `paper_card` and `paper_line`: each puts a marker where the
    paper goes and notes which card that is (`keys`, in the markers' order). The text part's
    slots (`text=True`) are its own pieces, in the same order."""

    def __init__(self, language: str, *, text: bool = False) -> None:
        self.language = language
        self.keys: list[CardKey] = []
        self._templates = (
            (TEXT_CARD_TEMPLATE, TEXT_LINE_TEMPLATE)
            if text
            else (EMAIL_CARD_TEMPLATE, EMAIL_LINE_TEMPLATE)
        )

    def card(self, paper: PaperItem) -> Markup:
        return self._slot(self._templates[0], paper)

    def line(self, paper: PaperItem) -> Markup:
        return self._slot(self._templates[1], paper)

    def _slot(self, template_name: str, paper: PaperItem) -> Markup:
        self.keys.append(card_key(template_name, paper, self.language))
        return card_marker(len(self.keys) - 1)


def split_at_markers(document: str, count: int, template_name: str) -> list[str]:
    """`document` cut at its markers: its text, then a marker's number, text, number, ...,
    text. Raises RenderError unless it has `count` markers."""
    parts = CARD_MARKER.split(document)
    if len(parts) != 2 * count + 1:
        raise RenderError(f"{template_name}: {count} papers, but not as many markers")
    return parts


def fill_in(parts: list[str], cards: list[tuple[str, int]]) -> str:
    """The document `split_at_markers` cut, each marker replaced by its card's HTML (`parts`
    is used up)."""
    parts[1::2] = [cards[int(number)][0] for number in parts[1::2]]
    return "".join(parts)


class PaperCards:
    """Paper cards and title lines as a digest's final HTML has them (through MJML, styles
    inlined), each made once per process for all the segments that show it.

    Up to 16,384 are kept (a few KB each: every paper of a busy day at each abstract length of
    the size ladder, in three languages); the ones a render lacks are made together, in one
    MJML document under the digest's own head, so they come out exactly as they would inside
    the whole digest (tests/test_render.py compares the two).
    """

    LIMIT = 16384

    def __init__(self) -> None:
        self._made: dict[CardKey, tuple[str, int]] = {}

    def get(self, keys: list[CardKey]) -> list[tuple[str, int]]:
        """(HTML, its size in bytes) of each card."""
        # Safe across threads: the store is replaced when full, never emptied in place, so
        # the one read here keeps every card it had.
        made = self._made
        missing = [key for key in dict.fromkeys(keys) if key not in made]
        if not missing:
            return [made[key] for key in keys]
        fresh = {
            key: (html_, len(html_.encode()))
            for key, html_ in zip(missing, _make_cards(missing), strict=True)
        }
        if len(made) + len(fresh) > self.LIMIT:
            self._made = {}
        self._made.update(fresh)
        return [fresh[key] if key in fresh else made[key] for key in keys]


@lru_cache(maxsize=8192)  # the same papers are in many segments' text parts
def text_piece(key: CardKey) -> str:
    """A paper's piece of the text part, its number left out (the digest writes it)."""
    template_name, paper, _language = key
    text = render_template(template_name, {"paper": paper, "paper_url": paper_placeholder(paper)})
    return text[TEXT_NUMBER_WIDTH:].removesuffix("\n")


def text_pieces(keys: list[CardKey]) -> list[tuple[str, int]]:
    return [(piece, 0) for piece in map(text_piece, keys)]


def _make_cards(keys: list[CardKey]) -> list[str]:
    cards = [  # autoescaped templates' output: HTML already
        Markup(  # noqa: S704
            render_template(
                template_name,
                {"paper": paper, "lang": language, "paper_url": paper_placeholder(paper)},
            )
        )
        for template_name, paper, language in keys
    ]
    document = mjml_to_email(
        render_template(CARDS_DOCUMENT_TEMPLATE, {"cards": cards, "marker": card_marker})
    )
    # A marker before each card and one after the last: the document's text around them goes.
    parts = CARD_MARKER.split(document)
    if len(parts) != 2 * len(keys) + 3:
        raise RenderError(f"{CARDS_DOCUMENT_TEMPLATE}: {len(keys)} papers, but not as many markers")
    return parts[2 : 2 * len(keys) + 1 : 2]


PAPER_CARDS = PaperCards()
"""The process's cards, shared by every render."""
