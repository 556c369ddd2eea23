"""The digest email's body: its subject, its HTML and plain-text parts, and its preheader.

A body is rendered once per segment (same topics, same language), so nothing per-subscriber
is in it: the unsubscribe, preferences and web-version links are placeholders
(`UNSUBSCRIBE_PLACEHOLDER`, ...), which `personalise` replaces for each message. The HTML is
Jinja2 → MJML → HTML with its styles inlined (`render.mjml`), with a marker where each paper
goes; the papers' own HTML comes from the process's paper cards (`render.cards`) and is put
in last. The HTML stays under the size limit by the size ladder (`render.fit`).
"""

from __future__ import annotations

import html
import logging
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.errors import RenderError
from newsletter.render import cards
from newsletter.render.digest_context import digest_context
from newsletter.render.environment import count_noun, render_template
from newsletter.render.fit import (
    FIT_STEPS,
    HTML_SIZE_LIMIT,
    PERSONAL_RESERVE,
    Fit,
    first_that_fits,
    fit_content,
    shortened,
)
from newsletter.render.mjml import mjml_to_email
from newsletter.textfmt import readable_title

UNSUBSCRIBE_PLACEHOLDER = "__NEWSLETTER_UNSUBSCRIBE_URL__"
"""Stands for the subscriber's unsubscribe URL in a rendered body; see `personalise`."""
PREFERENCES_PLACEHOLDER = "__NEWSLETTER_PREFERENCES_URL__"
"""Stands for the subscriber's preferences page."""
WEB_VERSION_PLACEHOLDER = "__NEWSLETTER_WEB_VERSION_URL__"
"""Stands for the subscriber's own web version of the digest ("View in browser")."""

EMAIL_HTML_TEMPLATE = "email/digest.mjml.j2"
EMAIL_TEXT_TEMPLATE = "email/digest.txt.j2"

SUBJECT_PREFIX = "arXiv digest"
SUBJECT_MAX_TOPICS = 3
"""Topic names a subject spells out before "and N more": inboxes show ~60-80 characters."""
PREHEADER_MAX_CHARS = 140

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Where a paper goes in a body: the `index`th paper listed in section `section` (cards
    first, then title lines), shown as a title line or a card."""

    section: int
    index: int
    line: bool


@dataclass(frozen=True)
class Frame:
    """A body cut where its papers go, the same for every reader of a segment whatever order
    they read its papers in: each reader's message is the frame with their papers put in
    (made once per process, `cards`), in their order."""

    html: str = ""
    """The HTML part with a card marker (`cards.CARD_MARKER`) where each slot's paper goes."""
    text: str = ""
    """The text part, the same markers in the same order."""
    slots: tuple[Slot, ...] = ()
    pools: tuple[tuple[PaperItem, ...], ...] = ()
    """Each section's papers a reader's order picks from, newest first (the default order)."""
    abstract_chars: int | None = None
    """The abstracts of cards are cut to this (the fit step's)."""
    language: str = "en"

    def keys(self, orders: Sequence[Sequence[int]] | None = None) -> tuple[list, list]:
        """The cards (HTML, text) of each slot when each section's pool is read in `orders`
        (indices into the pool; None: newest first)."""
        html_keys, text_keys = [], []
        for slot in self.slots:
            index = orders[slot.section][slot.index] if orders else slot.index
            html_keys.append(self.card(slot.section, index, slot.line, html=True))
            text_keys.append(self.card(slot.section, index, slot.line, html=False))
        return html_keys, text_keys

    def card(self, section: int, index: int, line: bool, *, html: bool) -> cards.CardKey:
        """The card of the `index`th paper of a section's pool, shown as a line or a card,
        in the HTML part or the text part."""
        paper = self.pools[section][index]
        if line:
            if html:
                return cards.card_key(cards.EMAIL_LINE_TEMPLATE, paper, self.language)
            return cards.TEXT_LINE_TEMPLATE, paper, ""
        if self.abstract_chars is not None:
            paper = shortened(paper, self.abstract_chars)
        if html:
            return cards.card_key(cards.EMAIL_CARD_TEMPLATE, paper, self.language)
        return cards.TEXT_CARD_TEMPLATE, paper, ""

    def bodies(self, orders: Sequence[Sequence[int]] | None = None) -> tuple[str, str]:
        """(HTML, text) with the papers in `orders` (the readers' links still placeholders)."""
        html_keys, text_keys = self.keys(orders)
        count = len(self.slots)
        html_parts = cards.split_at_markers(self.html, count, EMAIL_HTML_TEMPLATE)
        text_parts = cards.split_at_markers(self.text, count, EMAIL_TEXT_TEMPLATE)
        return (
            cards.fill_in(html_parts, cards.PAPER_CARDS.get(html_keys)),
            cards.fill_in(text_parts, cards.text_pieces(text_keys)),
        )


@dataclass(frozen=True)
class RenderedBody:
    """A ready email body: subject, HTML part and plain-text part."""

    subject: str
    html: str
    text: str
    fit: Fit = Fit()
    """The step of `FIT_STEPS` that kept the HTML under `HTML_SIZE_LIMIT`."""
    frame: Frame = Frame()
    """The same body cut where its papers go, for readers who read them in their own order."""


def render_email(
    content: DigestContent,
    *,
    sender_name: str,
    size_limit: int = HTML_SIZE_LIMIT,
    ranked: bool = False,
    whole: bool = True,
) -> RenderedBody:
    """The digest email of one segment, with `UNSUBSCRIBE_PLACEHOLDER` for the link.

    The HTML stays under `size_limit` bytes: the first step of `FIT_STEPS` that fits is used,
    for the text part too, so both parts hold the same papers and links. With `ranked` (some
    readers pick the papers shown in their own order), the step is the one that fits whichever
    papers a reader's order puts first: it is measured with each section's largest cards.
    Without `whole`, only the frame is made (a sender assembles each message from it) and the
    body's `html` and `text` are empty.
    """
    budget = size_limit - PERSONAL_RESERVE - paper_links_reserve(content)
    around = FrameBytes()  # what one step's frame measured bounds the others'

    def frame_at(fit: Fit, budget: int | None) -> str | None:
        return html_frame(content, sender_name, fit, budget, any_order=ranked, around=around)

    fitted = first_that_fits(frame_at, budget)
    if fitted is not None:
        fit, frame_html = fitted
    else:
        fit = FIT_STEPS[-1]
        frame_html = frame_at(fit, None)
        logger.warning(
            "digest %s: %d bytes of HTML even as an outline (limit %d): Gmail will clip it",
            content.date,
            len(frame_html.encode()),
            size_limit,
        )
    frame = email_frame(content, sender_name, fit, frame_html)
    body_html, body_text = frame.bodies() if whole else ("", "")
    return RenderedBody(email_subject(content), body_html, body_text, fit, frame)


PAPER_LINK_BYTES = 3 * 150
"""Bytes a card's three links to its reader's actions add, beyond the base URL."""


def paper_links_reserve(content: DigestContent) -> int:
    """Bytes the readers' own links to their papers' actions may add to the HTML."""
    shown = sum(len(section.papers) for section in content.sections)
    return shown * (PAPER_LINK_BYTES + 3 * len(content.base_url))


def _pool(section: TopicSection) -> tuple[PaperItem, ...]:
    return section.pool or section.papers + section.titles_only


def largest_cards(content: DigestContent, fit: Fit) -> int:
    """Bytes of the papers' HTML in the biggest email any order of each section's pool can
    make at `fit`: per section, its largest cards (as `fit` cuts their abstracts) for its card
    slots and its largest title lines for its line slots. (A paper counted both as a card and
    a line makes this an upper bound, never less.)"""
    shown = fit_content(content, fit)
    keys: list[cards.CardKey] = []
    counts: list[tuple[int, int, int]] = []  # (pool size, cards shown, lines shown)
    for whole, section in zip(content.sections, shown.sections, strict=True):
        if not section.total:
            continue
        pool = _pool(whole)
        chars = fit.abstract_chars
        card_papers = pool if chars is None else [shortened(paper, chars) for paper in pool]
        language = content.language
        keys += [cards.card_key(cards.EMAIL_CARD_TEMPLATE, p, language) for p in card_papers]
        keys += [cards.card_key(cards.EMAIL_LINE_TEMPLATE, p, language) for p in pool]
        counts.append((len(pool), len(section.papers), len(section.titles_only)))
    sizes = [size for _html, size in cards.PAPER_CARDS.get(keys)]
    total, start = 0, 0
    for pool_size, card_count, line_count in counts:
        card_sizes = sorted(sizes[start : start + pool_size], reverse=True)
        line_sizes = sorted(sizes[start + pool_size : start + 2 * pool_size], reverse=True)
        total += sum(card_sizes[:card_count]) + sum(line_sizes[:line_count])
        start += 2 * pool_size
    return total


def email_html(
    content: DigestContent, sender_name: str, fit: Fit, budget: int | None = None
) -> str | None:
    """The digest's HTML as `fit` shows it, or None when over `budget` bytes."""
    document = html_frame(content, sender_name, fit, budget)
    if document is None:
        return None
    return email_frame(content, sender_name, fit, document).bodies()[0]


SLOT_FRAME_MAX = 400
"""Bytes of frame a paper's slot can bring at most (its marker and wrapper: 35 to 125
measured): removing slots lowers a frame by no more than this each."""


class FrameBytes:
    """The bytes of a body's frame (everything but its papers' own HTML) measured at one step
    of the ladder: a floor for the frame at any other step of the same body, whose sections,
    header and footer are the same and whose slots differ (`SLOT_FRAME_MAX` each at most).
    With it, a step whose papers and that floor are already over the budget is refused without
    its MJML and inlining (most of a render's cost); the step chosen is the same."""

    def __init__(self) -> None:
        self.measured: int | None = None
        self.slots = 0

    def floor(self, slots: int) -> int:
        if self.measured is None:
            return 0
        return self.measured - max(0, self.slots - slots) * SLOT_FRAME_MAX

    def note(self, measured: int, slots: int) -> None:
        self.measured, self.slots = measured, slots


def html_frame(
    content: DigestContent,
    sender_name: str,
    fit: Fit,
    budget: int | None = None,
    *,
    any_order: bool = False,
    around: FrameBytes | None = None,
) -> str | None:
    """The digest's HTML as `fit` shows it, with a marker where each paper goes, or None when
    the whole would be over `budget` bytes (with `any_order`, whichever papers of each
    section's pool a reader's order shows: `largest_cards`; its preheader then names no first
    paper, the reader's order deciding which is first).

    The document goes through MJML and the CSS inlining with the markers; the papers' own
    HTML, which is most of a digest and shared by many segments, comes from
    `cards.PAPER_CARDS` (made once per process) and is put in last (`Frame.bodies`).
    """
    if budget is not None:  # first what the papers weigh: no template, no MJML
        keys = slot_keys(content, fit)
        total = sum(card_bytes for _, card_bytes in cards.PAPER_CARDS.get(keys))
        if any_order and total <= budget:  # (the newest alone too big: no order is smaller)
            total = largest_cards(content, fit)
        least_frame = 0 if around is None else around.floor(len(keys))
        if total + least_frame > budget:
            return None  # too big on its papers (and the least frame): not worth rendering
    context = email_context(content, sender_name, fit, first_paper=not any_order)
    slots = cards.CardSlots(content.language)
    context.update(paper_card=slots.card, paper_line=slots.line)
    document = render_template(EMAIL_HTML_TEMPLATE, context)
    if budget is None:
        return mjml_to_email(document)
    if slots.keys != keys:  # (the same objects, mostly: cheap)
        raise RenderError(f"{EMAIL_HTML_TEMPLATE}: its papers are not those `slot_keys` says")
    frame = mjml_to_email(document)
    parts = cards.split_at_markers(frame, len(slots.keys), EMAIL_HTML_TEMPLATE)
    framing = sum(len(text.encode()) for text in parts[::2])
    if around is not None:
        around.note(framing, len(slots.keys))
    return frame if total + framing <= budget else None


def slot_keys(content: DigestContent, fit: Fit) -> list[cards.CardKey]:
    """The cards the HTML template puts in a body at `fit`, in order, as its `paper_card` and
    `paper_line` note them: each listed section's cards, then its title lines."""
    shown = fit_content(content, fit)
    language = content.language
    keys: list[cards.CardKey] = []
    for section in shown.sections:
        if section.total:
            keys += [cards.card_key(cards.EMAIL_CARD_TEMPLATE, p, language) for p in section.papers]
            keys += [
                cards.card_key(cards.EMAIL_LINE_TEMPLATE, p, language) for p in section.titles_only
            ]
    return keys


def email_text(content: DigestContent, sender_name: str, fit: Fit) -> str:
    """The digest's plain-text part as `fit` shows it (no size limit: it is not clipped)."""
    return email_frame(content, sender_name, fit).bodies()[1]


def email_frame(
    content: DigestContent, sender_name: str, fit: Fit, frame_html: str | None = None
) -> Frame:
    """The digest as `fit` shows it, cut where each paper goes: the text part rendered here,
    the HTML part's `html_frame` given (without it, the frame has no HTML part)."""
    context = email_context(content, sender_name, fit)
    text_slots = cards.CardSlots(content.language, text=True)
    context.update(paper_text=text_slots.card, paper_text_line=text_slots.line)
    text_frame = render_template(EMAIL_TEXT_TEMPLATE, context)
    shown = fit_content(content, fit)
    slots = tuple(
        Slot(number, index, index >= len(section.papers))
        for number, section in enumerate(shown.sections)
        if section.total
        for index in range(len(section.papers) + len(section.titles_only))
    )
    if len(text_slots.keys) != len(slots):
        raise RenderError(f"{EMAIL_TEXT_TEMPLATE}: {len(slots)} papers, but not as many markers")
    return Frame(
        html=frame_html if frame_html is not None else _no_html(len(slots)),
        text=text_frame,
        slots=slots,
        pools=tuple(_pool(section) for section in content.sections),
        abstract_chars=fit.abstract_chars,
        language=content.language,
    )


def _no_html(count: int) -> str:
    """A stand-in HTML frame (for the text part alone): just its markers."""
    return "".join(cards.card_marker(number) for number in range(count))


def email_context(
    content: DigestContent, sender_name: str, fit: Fit, *, first_paper: bool = True
) -> dict[str, object]:
    """What the email's templates (HTML and text) are given: the digest as `fit` shows it,
    its subject and preheader (naming the first paper unless `first_paper` is off), and
    placeholders for the subscriber's links."""
    shown = fit_content(content, fit)
    context = digest_context(shown)
    context.update(
        subject=email_subject(shown),
        preheader=preheader(shown, first=first_paper),
        sender_name=sender_name,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        preferences_url=PREFERENCES_PLACEHOLDER,
        web_version_url=WEB_VERSION_PLACEHOLDER,
    )
    return context


def personalise(
    body: RenderedBody,
    unsubscribe_url: str,
    preferences_url: str,
    web_version_url: str,
    paper_url: Callable[[str], str] | None = None,
    orders: Sequence[Sequence[int]] | None = None,
) -> RenderedBody:
    """The body of one subscriber's message: each placeholder replaced by their link, each
    paper's actions by `paper_url(arxiv_id)` (their own link; None: a stand-in), the papers in
    `orders` (see `Frame.keys`; None: newest first)."""
    links = {
        UNSUBSCRIBE_PLACEHOLDER: unsubscribe_url,
        PREFERENCES_PLACEHOLDER: preferences_url,
        WEB_VERSION_PLACEHOLDER: web_version_url,
    }
    html_part, text_part = body.frame.bodies(orders) if orders else (body.html, body.text)
    for placeholder, url in links.items():
        html_part = html_part.replace(placeholder, html.escape(url))
        text_part = text_part.replace(placeholder, url)
    own = paper_url or (lambda arxiv_id: f"{web_version_url}#{arxiv_id}")
    html_part = cards.PAPER_PLACEHOLDER.sub(lambda m: html.escape(own(m.group(1))), html_part)
    text_part = cards.PAPER_PLACEHOLDER.sub(lambda m: own(m.group(1)), text_part)
    return replace(body, html=html_part, text=text_part)


def email_subject(content: DigestContent) -> str:
    """`arXiv digest 2026-11-27: 14 new papers in MLLM, Diffusion and 2 more`."""
    prefix = f"{SUBJECT_PREFIX} {content.date.isoformat()}"
    if content.since is not None:
        prefix = f"{SUBJECT_PREFIX} {content.since.isoformat()} to {content.date.isoformat()}"
    names = [section.name for section in content.sections if section.total > 0]
    if not names and content.code_released:
        return f"{prefix}: {_code_released(content)}"
    if not names:
        return f"{prefix}: no new papers"
    shown = ", ".join(names[:SUBJECT_MAX_TOPICS])
    if len(names) > SUBJECT_MAX_TOPICS:
        shown += f" and {len(names) - SUBJECT_MAX_TOPICS} more"
    return f"{prefix}: {count_noun(content.paper_count, 'new paper')} in {shown}"


def _code_released(content: DigestContent) -> str:
    """`code released for 2 earlier papers`."""
    count = len(content.code_released) + content.code_released_more
    return f"code released for {count_noun(count, 'earlier paper')}"


def preheader(content: DigestContent, *, first: bool = True) -> str:
    """The inbox preview line after the subject: the count of each topic, then the first title
    (not with `first` off: for readers whose own order decides which paper is first).

    `8 new papers today: MLLM (7), Diffusion (1). First: PanGu-π: Enhancing Language…`
    """
    counts = [f"{section.name} ({section.total})" for section in content.sections if section.total]
    when = "today" if content.since is None else f"since {content.since.isoformat()}"
    if not counts and content.code_released:
        return f"No new papers in your topics {when}; {_code_released(content)}."
    if not counts:
        return f"No new papers in your topics {when}."
    summary = f"{count_noun(content.paper_count, 'new paper')} {when}: {', '.join(counts)}."
    paper = next((section.papers[0] for section in content.sections if section.papers), None)
    if first and paper is not None and len(summary) < PREHEADER_MAX_CHARS - 40:
        summary += f" First: {readable_title(paper.title)}"
    return textwrap.shorten(summary, PREHEADER_MAX_CHARS, placeholder="…")
