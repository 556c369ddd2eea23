"""Templates → HTML and text: the digest email, its web version and the web app's pages.

An email body is rendered once per segment (same topics, same language), so nothing
per-subscriber is in it: the unsubscribe, preferences and web-version links are placeholders
(`UNSUBSCRIBE_PLACEHOLDER`, ...), which `personalise` replaces for each message. The email
pipeline is Jinja2 → MJML → HTML (mjml-python, MRML) → premailer's CSS inlining (MRML ignores
`mj-style inline="inline"`). The papers, most of a digest and shown by many segments, go
through it once per process each (`_Pieces`) and are put into each segment's document last.

Gmail clips an HTML part above about 102 KB, hiding the rest (the unsubscribe link among it)
behind "View entire message". `render_email` keeps every body under `HTML_SIZE_LIMIT`: when the
full digest is bigger, it takes the first of the `FIT_STEPS` that fits, which shorten the
abstracts, then list the later papers by title alone, then fewer titles with "N more on the web".
"""

from __future__ import annotations

import html
import logging
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import cssutils
import jinja2
import mjml
from lxml import etree
from markupsafe import Markup

import newsletter
from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.errors import RenderError
from newsletter.render.inline import inline_styles
from newsletter.sources.codelinks import link_label, strip_trailing
from newsletter.textfmt import (
    authors_line,
    http_url,
    is_http_url,
    readable_paragraphs,
    readable_title,
    shorten,
    xml_safe,
)

UNSUBSCRIBE_PLACEHOLDER = "__NEWSLETTER_UNSUBSCRIBE_URL__"
"""Stands for the subscriber's unsubscribe URL in a rendered body; see `personalise`."""
PREFERENCES_PLACEHOLDER = "__NEWSLETTER_PREFERENCES_URL__"
"""Stands for the subscriber's preferences page."""
WEB_VERSION_PLACEHOLDER = "__NEWSLETTER_WEB_VERSION_URL__"
"""Stands for the subscriber's own web version of the digest ("View in browser")."""

EMAIL_HTML_TEMPLATE = "email/digest.mjml.j2"
EMAIL_TEXT_TEMPLATE = "email/digest.txt.j2"
EMAIL_CARD_TEMPLATE = "email/paper_card.html.j2"
EMAIL_LINE_TEMPLATE = "email/paper_line.html.j2"
EMAIL_PIECES_TEMPLATE = "email/pieces.mjml.j2"
WEB_DIGEST_TEMPLATE = "web/digest.html.j2"
WEB_DIGEST_LIST_TEMPLATE = "web/digest_list.html.j2"

logger = logging.getLogger(__name__)

SUBJECT_PREFIX = "arXiv digest"
SUBJECT_MAX_TOPICS = 3
"""Topic names a subject spells out before "and N more": inboxes show ~60-80 characters."""
PREHEADER_MAX_CHARS = 140
TEXT_WIDTH = 76

HTML_SIZE_LIMIT = 100_000
"""Bytes of HTML an email may have: Gmail clips above about 102 KB (102,400 bytes)."""
PERSONAL_RESERVE = 1_000
"""Bytes kept free for what `personalise` adds per subscriber (its links, ~100 bytes each)."""

_ESCAPED_EXTENSIONS = ("html", "htm", "mjml", "xml", "html.j2", "htm.j2", "mjml.j2", "xml.j2")
_RIGHT_TO_LEFT = {"ar", "arc", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "sd", "ur", "yi"}

# cssutils reports every vendor property (mso-*, -webkit-*) of MJML's CSS as a problem.
cssutils.log.setLevel(logging.CRITICAL)


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


@dataclass(frozen=True)
class RenderedBody:
    """A ready email body: subject, HTML part and plain-text part."""

    subject: str
    html: str
    text: str
    fit: Fit = Fit()
    """The step of `FIT_STEPS` that kept the HTML under `HTML_SIZE_LIMIT`."""

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


@dataclass(frozen=True)
class ContentsRow:
    """One line of an issue's table of contents."""

    name: str
    anchor: str | None
    """The topic's section (`#slug`), when it has papers of its own."""
    summary: str
    """`5 papers`, `7 papers, 2 listed under MLLM`, `3 papers, listed under MLLM`, ..."""


@dataclass(frozen=True)
class DigestListItem:
    """One past digest in the archive list."""

    date: date
    paper_count: int
    url: str
    topics: tuple[tuple[str, str, int], ...] = ()
    """(name, address of the topic's page, papers) of each topic with papers that day."""


def template_dir() -> Path:
    """The templates folder: inside the installed package, else the source checkout's."""
    packaged = Path(newsletter.__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(newsletter.__file__).parent.parent / "templates"


def static_dir() -> Path:
    """The web app's static files (served as `/static/...`)."""
    return template_dir() / "web" / "static"


def render_email(
    content: DigestContent, *, sender_name: str, size_limit: int = HTML_SIZE_LIMIT
) -> RenderedBody:
    """The digest email of one segment, with `UNSUBSCRIBE_PLACEHOLDER` for the link.

    The HTML stays under `size_limit` bytes: the first step of `FIT_STEPS` that fits is used,
    for the text part too, so both parts hold the same papers and links.
    """
    budget = size_limit - PERSONAL_RESERVE
    fit, body_html = FIT_STEPS[0], _fitted_html(content, sender_name, FIT_STEPS[0], budget)
    if body_html is None:
        # Each step shows less than the one before. A digest too big as a whole mostly fits
        # after a step or two: try steps 1, 2, 4, 8, then bisect between the last that did not
        # fit and the first that did.
        low, high, step = 1, len(FIT_STEPS) - 1, 1
        while step <= high:
            candidate = _fitted_html(content, sender_name, FIT_STEPS[step], budget)
            if candidate is not None:
                fit, body_html, high = FIT_STEPS[step], candidate, step - 1
                break
            low, step = step + 1, step * 2
        while low <= high:
            middle = (low + high) // 2
            candidate = _fitted_html(content, sender_name, FIT_STEPS[middle], budget)
            if candidate is not None:
                fit, body_html, high = FIT_STEPS[middle], candidate, middle - 1
            else:
                low = middle + 1
    if body_html is None:
        fit, body_html = FIT_STEPS[-1], _fitted_html(content, sender_name, FIT_STEPS[-1])
        logger.warning(
            "digest %s: %d bytes of HTML even as an outline (limit %d): Gmail will clip it",
            content.date,
            len(body_html.encode()),
            size_limit,
        )
    # The text part only for the step chosen: it is a fifth of a render's cost.
    body_text = _render(EMAIL_TEXT_TEMPLATE, _email_context(content, sender_name, fit))
    return RenderedBody(email_subject(content), body_html, body_text, fit)


def render_fitted(
    content: DigestContent, sender_name: str, fit: Fit, budget: int | None = None
) -> RenderedBody | None:
    """The body as `fit` shows it (see `FIT_STEPS`); None when its HTML is over `budget` bytes."""
    body_html = _fitted_html(content, sender_name, fit, budget)
    if body_html is None:
        return None
    body_text = _render(EMAIL_TEXT_TEMPLATE, _email_context(content, sender_name, fit))
    return RenderedBody(email_subject(content), body_html, body_text, fit)


def _fitted_html(
    content: DigestContent, sender_name: str, fit: Fit, budget: int | None = None
) -> str | None:
    """The digest's HTML as `fit` shows it, or None when over `budget` bytes.

    The document goes through MJML and the CSS inlining with a marker where each paper goes;
    the papers' own HTML, which is most of a digest and shared by many segments, comes from
    `_PIECES` (made once per process) and is put in last.
    """
    context = _email_context(content, sender_name, fit)
    slots: list[_PieceKey] = []

    def slot(template_name: str):
        def put(paper: PaperItem) -> Markup:
            slots.append(_piece_key(template_name, paper, content.language))
            return _marker(len(slots) - 1)

        return put

    context.update(paper_card=slot(EMAIL_CARD_TEMPLATE), paper_line=slot(EMAIL_LINE_TEMPLATE))
    document = _render(EMAIL_HTML_TEMPLATE, context)
    pieces = _PIECES.get(slots)
    total = sum(piece_bytes for _, piece_bytes in pieces)
    if budget is not None and total > budget:
        return None  # too big on its papers alone: not worth MJML and inlining
    parts = _MARKER.split(inline_css(mjml_to_html(document)))
    if len(parts) != 2 * len(slots) + 1:
        raise RenderError(f"{EMAIL_HTML_TEMPLATE}: {len(slots)} papers, but not as many markers")
    total += sum(len(text.encode()) for text in parts[::2])
    if budget is not None and total > budget:
        return None
    parts[1::2] = [pieces[int(number)][0] for number in parts[1::2]]
    return "".join(parts)


_PieceKey = tuple[str, PaperItem, str]
"""(template, paper, language): what a paper's HTML in a digest depends on."""

_MARKER = re.compile(r'<i class="nl-piece-(\d+)"></i>')
"""Where a paper's HTML goes. Paper text cannot make one: its "<" is always escaped."""


def _marker(number: int) -> Markup:
    return Markup(f'<i class="nl-piece-{number}"></i>')  # noqa: S704 (an int, no input)


def _piece_key(template_name: str, paper: PaperItem, language: str) -> _PieceKey:
    # A paper shown in English (no translation) looks the same in every segment's language.
    translated = paper.title_translated or paper.abstract_translated
    return template_name, paper, language if translated else ""


class _Pieces:
    """Paper cards and title lines as a digest's final HTML has them (through MJML, styles
    inlined), each made once per process for all the segments that show it.

    A few thousand are kept (a few KB each); the ones a render lacks are made together, in one
    MJML document under the digest's own head, so they come out exactly as they would inside
    the whole digest (tests/test_render.py compares the two).
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._made: dict[_PieceKey, tuple[str, int]] = {}

    def get(self, keys: list[_PieceKey]) -> list[tuple[str, int]]:
        """(HTML, its size in bytes) of each piece."""
        # Safe across threads: the store is replaced when full, never emptied in place, so
        # the one read here keeps every piece it had.
        made = self._made
        missing = [key for key in dict.fromkeys(keys) if key not in made]
        if not missing:
            return [made[key] for key in keys]
        fresh = {
            key: (html_, len(html_.encode()))
            for key, html_ in zip(missing, _make_pieces(missing), strict=True)
        }
        if len(made) + len(fresh) > self.LIMIT:
            self._made = {}
        self._made.update(fresh)
        return [fresh[key] if key in fresh else made[key] for key in keys]


def _make_pieces(keys: list[_PieceKey]) -> list[str]:
    pieces = [  # autoescaped templates' output: HTML already
        Markup(_render(template_name, {"paper": paper, "lang": language}))  # noqa: S704
        for template_name, paper, language in keys
    ]
    document = mjml_to_html(_render(EMAIL_PIECES_TEMPLATE, {"pieces": pieces, "marker": _marker}))
    parts = _MARKER.split(inline_css(document))
    if len(parts) != 2 * len(keys) + 3:
        raise RenderError(f"{EMAIL_PIECES_TEMPLATE}: {len(keys)} papers, but not as many markers")
    return parts[2 : 2 * len(keys) + 1 : 2]


_PIECES = _Pieces()


def _email_context(content: DigestContent, sender_name: str, fit: Fit) -> dict[str, object]:
    context = _digest_context(fit_content(content, fit))
    context.update(
        sender_name=sender_name,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        preferences_url=PREFERENCES_PLACEHOLDER,
        web_version_url=WEB_VERSION_PLACEHOLDER,
    )
    return context


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
        cards = tuple(_shortened(paper, fit.abstract_chars) for paper in cards)
    return replace(section, papers=cards, titles_only=listed[count:])


@lru_cache(maxsize=8192)  # the same papers are shortened for many segments
def _shortened(paper: PaperItem, limit: int) -> PaperItem:
    translated = paper.abstract_translated
    return replace(
        paper,
        abstract=shorten(paper.abstract, limit),
        abstract_translated=shorten(translated, limit) if translated else translated,
    )


def personalise(
    body: RenderedBody, unsubscribe_url: str, preferences_url: str, web_version_url: str
) -> RenderedBody:
    """The body of one subscriber's message: each placeholder replaced by their link."""
    links = {
        UNSUBSCRIBE_PLACEHOLDER: unsubscribe_url,
        PREFERENCES_PLACEHOLDER: preferences_url,
        WEB_VERSION_PLACEHOLDER: web_version_url,
    }
    html_part, text_part = body.html, body.text
    for placeholder, url in links.items():
        html_part = html_part.replace(placeholder, html.escape(url))
        text_part = text_part.replace(placeholder, url)
    return replace(body, html=html_part, text=text_part)


def email_subject(content: DigestContent) -> str:
    """`arXiv digest 2026-11-27: 14 new papers in MLLM, Diffusion and 2 more`."""
    prefix = f"{SUBJECT_PREFIX} {content.date.isoformat()}"
    names = [section.name for section in content.sections if section.total > 0]
    if not names:
        return f"{prefix}: no new papers"
    shown = ", ".join(names[:SUBJECT_MAX_TOPICS])
    if len(names) > SUBJECT_MAX_TOPICS:
        shown += f" and {len(names) - SUBJECT_MAX_TOPICS} more"
    return f"{prefix}: {count_noun(content.paper_count, 'new paper')} in {shown}"


def preheader(content: DigestContent) -> str:
    """The inbox preview line after the subject: the count of each topic, then the first title.

    `8 new papers today: MLLM (7), Diffusion (1). First: PanGu-π: Enhancing Language…`
    """
    counts = [f"{section.name} ({section.total})" for section in content.sections if section.total]
    if not counts:
        return "No new papers in your topics today."
    summary = f"{count_noun(content.paper_count, 'new paper')} today: {', '.join(counts)}."
    first = next((section.papers[0] for section in content.sections if section.papers), None)
    if first is not None and len(summary) < PREHEADER_MAX_CHARS - 40:
        summary += f" First: {readable_title(first.title)}"
    return textwrap.shorten(summary, PREHEADER_MAX_CHARS, placeholder="…")


def mjml_to_html(mjml_source: str) -> str:
    """MJML → responsive HTML (MRML), failures as `RenderError`."""
    try:
        # fonts={}: no Google Fonts import for the system font stack (no third-party fetches).
        return mjml.mjml2html(mjml_source, disable_comments=True, fonts={})
    except Exception as error:  # MRML raises its own, undocumented exception types
        raise RenderError(f"MJML could not be rendered: {error}") from error


def inline_css(document: str) -> str:
    """Copy stylesheet rules into `style` attributes, as Gmail and Outlook need.

    Only `<style>` blocks that start with `INLINE_CSS_MARKER` are inlined: MRML's own reset
    (`table, td {...}`, `p {...}`) is written for a stylesheet, and copying it onto every table
    cell adds ~10% to a digest for nothing. The `<style>` blocks stay too, since clients that
    honour them need the `@media` rules (the one-column phone layout).
    """
    root = etree.fromstring(document, etree.HTMLParser())
    inline_styles(root)  # premailer's result, faster (see css_inliner)
    # Serialised here rather than by premailer, which drops MRML's lower-case doctype; without
    # a doctype clients render in quirks mode.
    return "<!doctype html>\n" + etree.tostring(root, method="html", encoding="unicode")


def render_web_digest(content: DigestContent, *, site_name: str) -> str:
    """The browser version of a digest: every topic, each section reachable as `#slug`."""
    return render_page(WEB_DIGEST_TEMPLATE, site_name=site_name, **_digest_context(content))


def render_digest_list(
    items: Iterable[DigestListItem | tuple[date, int, str]],
    *,
    site_name: str,
    feeds: Iterable[tuple[str, str]] = (),
) -> str:
    """The archive page: past digests with their date, paper count, link and topic pages;
    `feeds` are (topic name, address) of the per-topic Atom feeds."""
    digests = [
        item if isinstance(item, DigestListItem) else DigestListItem(*item) for item in items
    ]
    return render_page(
        WEB_DIGEST_LIST_TEMPLATE, site_name=site_name, digests=digests, feeds=list(feeds)
    )


def render_page(template_name: str, **context: object) -> str:
    """A template by its name under `templates/` or `templates/web/` (`message.html.j2`).

    Pages extending `web/base.html.j2` need `site_name`; `lang` is optional (default `en`).
    """
    return _render(template_name, context)


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """`1 new paper`, `14 new papers`."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def text_direction(language: str) -> str:
    """`rtl` for languages written right to left (Arabic, Hebrew, Persian, ...), else `ltr`."""
    return "rtl" if language.split("-")[0].lower() in _RIGHT_TO_LEFT else "ltr"


def _digest_context(content: DigestContent) -> dict[str, object]:
    """What the digest templates (email, text, web) are given besides filters."""
    return {
        "content": content,
        "subject": email_subject(content),
        "preheader": preheader(content),
        "lang": content.language,
        "direction": text_direction(content.language),
        "contents": _table_of_contents(content),
        "topic_count": sum(1 for section in content.sections if section.total > 0),
    }


def _table_of_contents(content: DigestContent) -> list[ContentsRow]:
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


def _render(template_name: str, context: dict[str, object]) -> str:
    try:
        return environment().get_template(template_name).render(context)
    except jinja2.TemplateNotFound as error:
        raise RenderError(f"no template {error.name!r} under {template_dir()}") from error
    except jinja2.TemplateError as error:  # a missing variable (StrictUndefined), bad syntax
        raise RenderError(f"{template_name}: {error}") from error


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the process, with this module's filters."""
    env = jinja2.Environment(
        # Web pages answer to their bare name too (`message.html.j2`), as the web app uses them.
        loader=jinja2.FileSystemLoader([template_dir(), template_dir() / "web"]),
        # `digest.mjml.j2` is MJML and escaped; only `.txt` templates are not (unknown: escaped).
        autoescape=jinja2.select_autoescape(
            enabled_extensions=_ESCAPED_EXTENSIONS,
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        finalize=_xml_safe_output,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # The paper filters are cached: the same papers appear in many segments, and these run
    # for each paper of each render.
    env.filters.update(
        readable_title=_cached(readable_title),
        paragraphs=_cached(lambda text: tuple(readable_paragraphs(text))),
        authors=_cached(authors_line),
        count_noun=count_noun,
        day=_day,
        http_url=_cached(http_url),
        linked=_cached(_linked),
        link_label=link_label,
        wrap=_wrap,
    )
    return env


def _xml_safe_output(value: object) -> object:
    """Every value a template prints, without the characters XML forbids: one NUL or ESC in a
    paper's text made MJML refuse the whole email."""
    if not isinstance(value, str):
        return value
    cleaned = xml_safe(value)
    if len(cleaned) == len(value):
        return value
    return Markup(cleaned) if isinstance(value, Markup) else cleaned  # noqa: S704 (was Markup)


def _cached(function):
    """A pure text filter, remembered; unhashable arguments (a list) go straight through."""
    remembered = lru_cache(maxsize=16384)(function)

    def filter_(*args, **kwargs):
        try:
            return remembered(*args, **kwargs)
        except TypeError:  # unhashable
            return function(*args, **kwargs)

    return filter_


def _day(moment: datetime | date) -> str:
    """YYYY-MM-DD of a date or datetime."""
    return (moment.date() if isinstance(moment, datetime) else moment).isoformat()


_LINKABLE = re.compile(r"""https?://[^\s<>"'{}\\|^`]+""", re.IGNORECASE)


def _linked(text: str) -> Markup:
    """A paragraph, escaped, with each http(s) URL in it made a link (`\\href` and `\\url`
    come out of `readable_*` as plain URLs); no other scheme is ever linked."""
    parts, position = [], 0
    for match in _LINKABLE.finditer(text):
        url = strip_trailing(match.group())
        if not is_http_url(url):
            continue
        end = match.start() + len(url)
        parts += [html.escape(text[position : match.start()]), _anchor(url)]
        position = end
    parts.append(html.escape(text[position:]))
    return Markup("".join(parts))  # noqa: S704  every piece escaped just above


def _anchor(url: str) -> str:
    escaped = html.escape(url)
    return f'<a href="{escaped}">{escaped}</a>'


@lru_cache(maxsize=16384)  # the same abstracts recur in many segments
def _wrap(text: str, indent: str = "", first_indent: str | None = None) -> str:
    """A paragraph wrapped for the text part; long URLs stay whole so they stay clickable."""
    return textwrap.fill(
        text,
        width=TEXT_WIDTH,
        initial_indent=indent if first_indent is None else first_indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
