"""The web's pages: a digest's browser version, the archive of past digests, and any other
page of the web app by its template's name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from newsletter.digest.content import DigestContent
from newsletter.render.digest_context import digest_context
from newsletter.render.environment import render_template

WEB_DIGEST_TEMPLATE = "web/digest.html.j2"
WEB_DIGEST_LIST_TEMPLATE = "web/digest_list.html.j2"


@dataclass(frozen=True)
class DigestListItem:
    """One past digest in the archive list."""

    date: date
    paper_count: int
    url: str
    topics: tuple[tuple[str, str, int], ...] = ()
    """(name, address of the topic's page, papers) of each topic with papers that day."""


def render_web_digest(content: DigestContent, *, site_name: str) -> str:
    """The browser version of a digest: every topic, each section reachable as `#slug`."""
    return render_page(WEB_DIGEST_TEMPLATE, site_name=site_name, **digest_context(content))


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
    return render_template(template_name, context)
