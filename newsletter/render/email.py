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
from dataclasses import dataclass, replace

from newsletter.digest.content import DigestContent
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
class RenderedBody:
    """A ready email body: subject, HTML part and plain-text part."""

    subject: str
    html: str
    text: str
    fit: Fit = Fit()
    """The step of `FIT_STEPS` that kept the HTML under `HTML_SIZE_LIMIT`."""


def render_email(
    content: DigestContent, *, sender_name: str, size_limit: int = HTML_SIZE_LIMIT
) -> RenderedBody:
    """The digest email of one segment, with `UNSUBSCRIBE_PLACEHOLDER` for the link.

    The HTML stays under `size_limit` bytes: the first step of `FIT_STEPS` that fits is used,
    for the text part too, so both parts hold the same papers and links.
    """
    fitted = first_that_fits(
        lambda fit, budget: email_html(content, sender_name, fit, budget),
        size_limit - PERSONAL_RESERVE,
    )
    if fitted is not None:
        fit, body_html = fitted
    else:
        fit = FIT_STEPS[-1]
        body_html = email_html(content, sender_name, fit)
        logger.warning(
            "digest %s: %d bytes of HTML even as an outline (limit %d): Gmail will clip it",
            content.date,
            len(body_html.encode()),
            size_limit,
        )
    # The text part only for the step chosen: it is a fifth of a render's cost.
    body_text = email_text(content, sender_name, fit)
    return RenderedBody(email_subject(content), body_html, body_text, fit)


def email_html(
    content: DigestContent, sender_name: str, fit: Fit, budget: int | None = None
) -> str | None:
    """The digest's HTML as `fit` shows it, or None when over `budget` bytes.

    The document goes through MJML and the CSS inlining with a marker where each paper goes;
    the papers' own HTML, which is most of a digest and shared by many segments, comes from
    `cards.PAPER_CARDS` (made once per process) and is put in last.
    """
    context = email_context(content, sender_name, fit)
    slots = cards.CardSlots(content.language)
    context.update(paper_card=slots.card, paper_line=slots.line)
    document = render_template(EMAIL_HTML_TEMPLATE, context)
    made = cards.PAPER_CARDS.get(slots.keys)
    total = sum(card_bytes for _, card_bytes in made)
    if budget is not None and total > budget:
        return None  # too big on its papers alone: not worth MJML and inlining
    parts = cards.split_at_markers(mjml_to_email(document), len(slots.keys), EMAIL_HTML_TEMPLATE)
    total += sum(len(text.encode()) for text in parts[::2])
    if budget is not None and total > budget:
        return None
    return cards.fill_in(parts, made)


def email_text(content: DigestContent, sender_name: str, fit: Fit) -> str:
    """The digest's plain-text part as `fit` shows it (no size limit: it is not clipped)."""
    return render_template(EMAIL_TEXT_TEMPLATE, email_context(content, sender_name, fit))


def email_context(content: DigestContent, sender_name: str, fit: Fit) -> dict[str, object]:
    """What the email's templates (HTML and text) are given: the digest as `fit` shows it,
    its subject and preheader, and placeholders for the subscriber's links."""
    shown = fit_content(content, fit)
    context = digest_context(shown)
    context.update(
        subject=email_subject(shown),
        preheader=preheader(shown),
        sender_name=sender_name,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        preferences_url=PREFERENCES_PLACEHOLDER,
        web_version_url=WEB_VERSION_PLACEHOLDER,
    )
    return context


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
