"""Atom feeds: `/feed.xml` (every topic) and `/topics/<slug>/feed.xml` (one topic)."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from newsletter import store
from newsletter.db import session_scope
from newsletter.publish.feeds import ATOM_MIMETYPE, atom_xml, build_feed
from newsletter.web.common import settings

blueprint = Blueprint("feeds", __name__)

FEED_MAX_AGE = 900
"""Seconds a feed reader or proxy may keep a feed: digests come once a day."""


@blueprint.get("/feed.xml")
def all_topics():
    return _feed(None)


@blueprint.get("/topics/<slug>/feed.xml")
def one_topic(slug: str):
    return _feed(slug)


def _feed(slug: str | None) -> Response:
    config = settings()
    with session_scope(config) as session:
        topic = None
        if slug is not None:
            topic = store.topic_by_slug(session, slug) or abort(404)
        feed = build_feed(
            session, base_url=config.base_url, site_name=config.sender_name, topic=topic
        )
    response = Response(atom_xml(feed), content_type=f"{ATOM_MIMETYPE}; charset=utf-8")
    response.headers["Cache-Control"] = f"public, max-age={FEED_MAX_AGE}"
    return response
