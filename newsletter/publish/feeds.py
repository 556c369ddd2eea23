"""Atom feeds (RFC 4287) of the papers the digests carried (all topics, or one topic), and of
the papers a reader saved (their library).

An entry is a paper, as the digest that first carried it showed it: readable title, authors,
abstract, links to arXiv (abstract and PDF) and to the web archive. Only papers that a digest
has carried are in a feed, so a feed reader sees what a subscriber saw, on the same day.
The XML is written by ElementTree, which escapes all text; characters XML 1.0 forbids
(control characters in a pasted abstract) are dropped first.
"""

from __future__ import annotations

import bisect
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.digest.content import digest_web_url
from newsletter.models import Digest, Paper, Topic
from newsletter.textfmt import abs_url_for, http_url, readable_paragraphs, readable_title, xml_safe

ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 50
"""Papers per feed: a few days of a busy topic; feed readers keep what they have seen."""
ATOM_MIMETYPE = "application/atom+xml"


@dataclass(frozen=True)
class FeedEntry:
    arxiv_id: str
    title: str
    authors: tuple[str, ...]
    summary: str
    published: datetime
    updated: datetime
    abs_url: str
    pdf_url: str | None
    archive_url: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Feed:
    id: str
    title: str
    subtitle: str
    self_url: str
    archive_url: str
    author: str
    updated: datetime
    entries: tuple[FeedEntry, ...]


def topic_feed_url(base_url: str, topic: Topic) -> str:
    return f"{base_url}/topics/{topic.slug}/feed.xml"


def build_feed(
    session: Session, *, base_url: str, site_name: str, topic: Topic | None = None
) -> Feed:
    """The feed of every topic, or of one: its newest `FEED_ENTRIES` papers, digest order."""
    digests = sorted(store.list_digests(session), key=lambda digest: digest.window_end)
    if topic is None:
        self_url, title = f"{base_url}/feed.xml", f"{site_name}: new arXiv papers"
        subtitle = "New arXiv papers on every topic of the digest."
    else:
        self_url, title = topic_feed_url(base_url, topic), f"{site_name}: {topic.name}"
        subtitle = topic.description or f"New arXiv papers on {topic.name}."
    entries: list[FeedEntry] = []
    if digests:
        found = store.recent_papers(
            session,
            digests[-1].window_end,
            topic_id=None if topic is None else topic.id,
            limit=FEED_ENTRIES,
        )
        topic_names = store.topic_names_of(session, [paper.id for paper, _linked in found])
        ends = [digest.window_end for digest in digests]
        for paper, linked in found:
            digest = digests[bisect.bisect_left(ends, linked)]
            archive = digest_web_url(base_url, digest.issue_date)
            archive = archive if topic is None else f"{archive}/{topic.slug}"
            entries.append(feed_entry(paper, archive, topic_names.get(paper.id, ())))
    return Feed(
        id=self_url,
        title=title,
        subtitle=subtitle,
        self_url=self_url,
        archive_url=f"{base_url}/digests/",
        author=site_name,
        updated=_feed_updated(digests, entries),
        entries=tuple(entries),
    )


def library_feed(
    saved: Iterable[tuple[Paper, datetime]], *, self_url: str, library_url: str, site_name: str
) -> Feed:
    """A reader's library as a feed: the papers they saved, newest saved first (up to
    `FEED_ENTRIES`); it changes when they save one."""
    saved = list(saved)[:FEED_ENTRIES]
    entries = [feed_entry(paper, library_url, ()) for paper, _saved_at in saved]
    return Feed(
        id=self_url,
        title=f"{site_name}: your library",
        subtitle="The arXiv papers you saved from your digest.",
        self_url=self_url,
        archive_url=library_url,
        author=site_name,
        updated=max((at for _paper, at in saved), default=datetime(1970, 1, 1, tzinfo=UTC)),
        entries=tuple(entries),
    )


def feed_entry(paper: Paper, archive_url: str, topics: Iterable[str]) -> FeedEntry:
    """A paper as a feed shows it: readable text, the digest page that carried it."""
    return FeedEntry(
        arxiv_id=paper.arxiv_id,
        title=readable_title(paper.title),
        authors=tuple(paper.authors),
        summary="\n\n".join(readable_paragraphs(paper.abstract)),
        published=paper.published,
        updated=max(paper.updated, paper.published),
        abs_url=paper.abs_url,
        pdf_url=paper.pdf_url,
        archive_url=archive_url,
        topics=tuple(topics),
    )


def _feed_updated(digests: list[Digest], entries: list[FeedEntry]) -> datetime:
    moments = [entry.updated for entry in entries]
    if digests:
        moments.append(digests[-1].window_end)
    # A feed with nothing in it yet has not changed since the epoch (and stays the same).
    return max(moments, default=datetime(1970, 1, 1, tzinfo=UTC))


def atom_xml(feed: Feed) -> bytes:
    """The feed as an Atom document, UTF-8."""
    ET.register_namespace("", ATOM_NAMESPACE)
    root = ET.Element(_tag("feed"))
    _text(root, "id", feed.id)
    _text(root, "title", feed.title)
    _text(root, "subtitle", feed.subtitle)
    _text(root, "updated", rfc3339(feed.updated))
    _link(root, feed.self_url, "self", ATOM_MIMETYPE)
    _link(root, feed.archive_url, "alternate", "text/html")
    author = ET.SubElement(root, _tag("author"))
    _text(author, "name", feed.author)
    _text(root, "generator", "arxiv-newsletter")
    for entry in feed.entries:
        _entry(root, entry)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _entry(root: ET.Element, entry: FeedEntry) -> None:
    element = ET.SubElement(root, _tag("entry"))
    _text(element, "id", abs_url_for(entry.arxiv_id))
    _text(element, "title", entry.title)
    _text(element, "published", rfc3339(entry.published))
    _text(element, "updated", rfc3339(entry.updated))
    for name in entry.authors:
        author = ET.SubElement(element, _tag("author"))
        _text(author, "name", name)
    _link(element, http_url(entry.abs_url) or abs_url_for(entry.arxiv_id), "alternate")
    pdf = http_url(entry.pdf_url)
    if pdf:
        _link(element, pdf, "related", "application/pdf", "PDF")
    _link(element, entry.archive_url, "related", "text/html", "In the digest")
    for topic in entry.topics:
        ET.SubElement(element, _tag("category"), {"term": _clean(topic)})
    summary = _text(element, "summary", entry.summary)
    summary.set("type", "text")


def rfc3339(moment: datetime) -> str:
    """`2026-11-27T06:00:00Z`: Atom's date format, in UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tag(name: str) -> str:
    return f"{{{ATOM_NAMESPACE}}}{name}"


def _text(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, _tag(name))
    element.text = _clean(text)
    return element


def _link(
    parent: ET.Element, href: str, rel: str, type_: str | None = None, title: str | None = None
) -> None:
    attributes = {"rel": rel, "href": _clean(href)}
    if type_:
        attributes["type"] = type_
    if title:
        attributes["title"] = title
    ET.SubElement(parent, _tag("link"), attributes)


def _clean(text: str) -> str:
    return xml_safe(text)
