"""The digest archive: the list of past digests, each digest's web version (every topic), a page
per topic, and a subscriber's own version (their topics, their language) for "View in browser".
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, redirect

from newsletter import store
from newsletter.db import session_scope
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.models import Digest
from newsletter.publish.feeds import topic_feed_url
from newsletter.render.pages import DigestListItem, render_digest_list, render_web_digest
from newsletter.tokens import VIEW
from newsletter.web.common import invalid_link, parse_day, settings, token_value
from newsletter.web.pagecache import Validators, cached_page, validators

blueprint = Blueprint("archive", __name__)
SPAN_PATH = re.compile(r"span-([0-9]{1,12})")
"""A span's address: `Digest.path`."""


@blueprint.get("/")
def home():
    return redirect("/digests/")


@blueprint.get("/digests/")
def digests():
    """Every digest that carried papers: a day with nothing new is not an issue of the list
    (its page still answers, for the emails NEWSLETTER_SEND_EMPTY sent that day)."""
    with session_scope(settings()) as session:
        topics = store.list_topics(session)
        items = []
        for digest in store.list_digests(session):
            day = digest.issue_date.isoformat()
            start, end = digest.window_start, digest.window_end
            paper_count = store.count_papers_between(session, start, end)
            if not paper_count:
                continue
            counts = store.topic_counts_between(session, start, end)
            items.append(
                DigestListItem(
                    digest.issue_date,
                    paper_count,
                    f"/digests/{day}",
                    tuple(
                        (topic.name, f"/digests/{day}/{topic.slug}", counts[topic.id])
                        for topic in topics
                        if counts.get(topic.id)
                    ),
                )
            )
        feeds = [(topic.name, topic_feed_url("", topic)) for topic in topics]
    return render_digest_list(items, site_name=settings().sender_name, feeds=feeds)


def find_digest(session, day: str) -> Digest:
    """The digest an address names: a daily one by its date, a span by `span-<id>`; 404 for
    anything else."""
    span = SPAN_PATH.fullmatch(day)
    if span is not None:
        return store.span_by_id(session, int(span.group(1))) or abort(404)
    return store.digest_on(session, parse_day(day)) or abort(404)


def _digest_named(day: str) -> dict:
    """`store.digest_stamp`'s choice of digest for an address, as `find_digest` reads it."""
    span = SPAN_PATH.fullmatch(day)
    if span is not None:
        return {"span_id": int(span.group(1))}
    return {"issue_date": parse_day(day)}


@blueprint.get("/digests/<day>")
def digest_page(day: str):
    """A digest's web version: 304 or the cached page while it is unchanged (see `pagecache`)."""
    config, options = settings(), web_options()
    named = _digest_named(day)

    def read() -> Validators | None:
        with session_scope(config) as session:
            topics = store.list_topics(session)
            stamp = store.digest_stamp(session, [topic.id for topic in topics], **named)
            return stamp and validators(stamp, topics, (config.sender_name, options))

    def render(digest_id: int) -> str:
        with session_scope(config) as session:
            edition = Edition.read(session, store.digest_by_id(session, digest_id), options)
            content = edition.content(edition.topic_ids)
        return render_web_digest(content, site_name=config.sender_name)

    return cached_page(read, render)


@blueprint.get("/digests/<day>/<slug>")
def topic_page(day: str, slug: str):
    """One topic's part of a daily digest, cached as `digest_page` is."""
    config, options = settings(), web_options()
    issue_date = parse_day(day)

    def read() -> Validators | None:
        with session_scope(config) as session:
            topics = store.list_topics(session)
            topic = next((topic for topic in topics if topic.slug == slug), None)
            stamp = topic and store.digest_stamp(session, [topic.id], issue_date=issue_date)
            return stamp and validators(stamp, topics, (config.sender_name, options, slug))

    def render(digest_id: int) -> str:
        with session_scope(config) as session:
            digest = store.digest_by_id(session, digest_id)
            topic = store.topic_by_slug(session, slug) or abort(404)
            content = Edition.read(session, digest, options, topics=[topic]).content([topic.id])
        return render_web_digest(content, site_name=config.sender_name)

    return cached_page(read, render)


@blueprint.get("/digests/<day>/for/<token>")
def personal_digest(day: str, token: str):
    """A subscriber's own version: what their email held, every paper, in their language and
    their order (the papers of authors they follow first, each topic in their ranking).

    A link of someone no longer on the list shows every topic rather than an error.
    """
    public_id = token_value(VIEW, token)
    if public_id is None:
        return invalid_link("web version")
    config = settings()
    options = web_options()
    with session_scope(config) as session:
        digest = find_digest(session, day)
        subscriber = store.subscriber_by_public_id(session, public_id)
        if subscriber is None or not subscriber.topics:
            edition = Edition.read(session, digest, options)
            content = edition.content(edition.topic_ids)
        else:
            # Without a translator or summarizer every page is English, and says so (`lang`).
            in_language = options.translated or options.summarized
            language = subscriber.language if in_language else "en"
            topics = list(subscriber.topics)
            edition = Edition.read(session, digest, options, topics=topics, languages=[language])
            topic_ids = [topic.id for topic in topics]
            content = edition.content_for(
                session, subscriber.id, topic_ids, language, subscriber.created_at
            )
    return render_web_digest(content, site_name=config.sender_name)


def web_options() -> EditionOptions:
    """A web page shows every paper of its digest (the emails' cap is for mailboxes)."""
    return EditionOptions.from_settings(settings(), every_paper=True)
