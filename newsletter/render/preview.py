"""Previews: what a subscriber, or a set of topics, would receive now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.digest.content import DigestContent, digest_web_url
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.window import draft_digest
from newsletter.models import Digest, DigestKind, Topic, utcnow
from newsletter.render.email import RenderedBody, personalise, render_email
from newsletter.tokens import preferences_url, unsubscribe_url, web_version_url

Window = tuple[datetime | None, bool]
"""A reader's next window: where it starts, and whether it spans several days."""


def preview_html(
    session: Session,
    settings: Settings,
    email: str | None,
    topic_names: Sequence[str],
    *,
    window: Window | None = None,
) -> tuple[str, str]:
    """The email's HTML and a short label for its file name.

    It shows the papers waiting for the next digest (from `window`'s start, a reader's own
    window, when given); when nothing is waiting, the last digest.
    """
    body, label = preview_body(session, settings, email, topic_names, window=window)
    return body.html, label


def preview_body(
    session: Session,
    settings: Settings,
    email: str | None,
    topic_names: Sequence[str],
    *,
    window: Window | None = None,
) -> tuple[RenderedBody, str]:
    """`preview_html`'s whole body: its subject, HTML and text parts."""
    language, public_id, subscriber_id = settings.default_language, None, None
    if email:
        subscriber = store.get_subscriber(session, email)
        topics, language, label = list(subscriber.topics), subscriber.language, "subscriber"
        public_id, subscriber_id = subscriber.public_id, subscriber.id
    elif topic_names:
        topics, label = store.get_topics(session, topic_names), "topics"
    else:
        topics, label = store.list_topics(session), "all-topics"
    content = preview_content(session, settings, topics, language, subscriber_id, window)
    body = personalise(
        render_email(content, sender_name=settings.sender_name),
        *preview_links(settings, public_id, content.date),
    )
    return body, f"{label}-{content.date.isoformat()}"


def preview_links(
    settings: Settings, public_id: str | None, issue_date: date
) -> tuple[str, str, str]:
    """(unsubscribe, preferences, web version) links: the subscriber's own, or stand-ins."""
    base_url = settings.base_url
    if public_id is None:
        return (
            f"{base_url}/unsubscribe/preview",
            f"{base_url}/preferences/preview",
            digest_web_url(base_url, issue_date),
        )
    secret = settings.secret()
    return (
        unsubscribe_url(base_url, secret, public_id),
        preferences_url(base_url, secret, public_id),
        web_version_url(base_url, secret, public_id, issue_date),
    )


def preview_content(
    session: Session,
    settings: Settings,
    topics: list[Topic],
    language: str,
    subscriber_id: int | None = None,
    window: Window | None = None,
) -> DigestContent:
    """What a reader of these topics and this language would receive: the digest the next send
    would build (from `window`'s start, when given), or the last one when nothing is waiting
    (as the emails show it, capped); for a subscriber, with the papers of authors they follow
    and in their order."""
    options = EditionOptions.from_settings(settings)
    topic_ids = [topic.id for topic in topics]
    if window is not None:
        start, spans_days = window
        kind = DigestKind.span if spans_days else DigestKind.daily
        digest = Digest(
            issue_date=settings.today(), kind=kind, window_start=start, window_end=utcnow()
        )
    else:
        # The day the next send would build (NEWSLETTER_TIMEZONE's), not UTC's: near midnight
        # the two differ, and a preview must show the digest `newsletter send` would send.
        digest = draft_digest(session, settings.today(), utcnow())
    edition = Edition.read(session, digest, options, topics=topics, languages=[language])
    content = _content(session, edition, topic_ids, language, subscriber_id)
    latest = next(iter(store.list_digests(session)), None)
    if content.paper_count == 0 and latest is not None:
        edition = Edition.read(session, latest, options, topics=topics, languages=[language])
        content = _content(session, edition, topic_ids, language, subscriber_id)
    return content


def _content(
    session: Session,
    edition: Edition,
    topic_ids: list[int],
    language: str,
    subscriber_id: int | None,
) -> DigestContent:
    if subscriber_id is None:
        return edition.content(topic_ids, language)
    joined = store.subscriber_by_id(session, subscriber_id).created_at
    return edition.content_for(session, subscriber_id, topic_ids, language, joined)
