"""/api/v1/digests and /api/v1/papers: what was sent, and the papers the topics matched."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import UnknownRecord
from newsletter.models import Digest
from newsletter.web.api import schemas
from newsletter.web.api.auth import requires, resource
from newsletter.web.common import settings

blueprint = resource("digests", "Digests: each issue's window, papers and deliveries.")
papers = resource("papers", "Papers the topics matched.")


def _digest(session, digest_id: int) -> Digest:
    digest = store.digest_by_id(session, digest_id)
    if digest is None:
        raise UnknownRecord(f"no digest with the id {digest_id}")
    return digest


def _out(session, digest: Digest, topic_names: dict[int, str]) -> dict:
    start, end = digest.window_start, digest.window_end
    counts = store.topic_counts_between(session, start, end)
    return {
        "id": digest.id,
        "date": digest.issue_date,
        "kind": digest.kind.value,
        "window_start": start,
        "window_end": end,
        "created_at": digest.created_at,
        "ready_at": digest.ready_at,
        "papers": store.count_papers_between(session, start, end),
        "topics": {topic_names[i]: n for i, n in counts.items() if i in topic_names},
        "deliveries": store.delivery_counts(session, digest.id),
    }


def _topic_names(session) -> dict[int, str]:
    return {topic.id: topic.name for topic in store.list_topics(session)}


@blueprint.route("", methods=["GET"])
@requires("digests:read")
@blueprint.response(200, schemas.DigestOut(many=True))
def list_digests():
    """List the digests, newest first, with their paper counts by topic and their deliveries
    by state."""
    with session_scope(settings()) as session:
        names = _topic_names(session)
        return [_out(session, digest, names) for digest in store.list_digests(session)]


@blueprint.route("/<int:digest_id>", methods=["GET"])
@requires("digests:read", 404)
@blueprint.response(200, schemas.DigestOut)
def show_digest(digest_id: int):
    """Show one digest: its window, its papers by topic, its deliveries by state."""
    with session_scope(settings()) as session:
        return _out(session, _digest(session, digest_id), _topic_names(session))


@blueprint.route("/<int:digest_id>/papers", methods=["GET"])
@requires("digests:read", 404)
@blueprint.response(200, schemas.DigestPapersOut)
def digest_papers(digest_id: int):
    """A digest's papers, by topic (each newest submission first), as JSON."""
    with session_scope(settings()) as session:
        digest = _digest(session, digest_id)
        topics = store.list_topics(session)
        found = store.papers_of_topics_between(
            session, [topic.id for topic in topics], digest.window_start, digest.window_end
        )
        by_topic: dict[int, list] = {}
        for topic_id, paper in found:
            by_topic.setdefault(topic_id, []).append(paper)
        return {
            "digest": digest.id,
            "topics": [
                {"name": topic.name, "slug": topic.slug, "papers": by_topic[topic.id]}
                for topic in topics
                if topic.id in by_topic
            ],
        }


@papers.route("", methods=["GET"])
@requires("papers:read", 422)
@papers.arguments(schemas.PaperSearchArgs, location="query")
@papers.response(200, schemas.PaperFound(many=True))
def search_papers(args: dict):
    """Search the papers the topics matched: by arXiv id (without version), topic, and the day
    they were submitted (`since`, `until`, both included); newest first."""
    day = timedelta(days=1)
    with session_scope(settings()) as session:
        topic = store.get_topic(session, args["topic"]) if args["topic"] else None
        found = store.search_papers(
            session,
            arxiv_id=args["arxiv_id"].strip() if args["arxiv_id"] else None,
            topic_id=topic.id if topic else None,
            published_from=_midnight(args["since"]),
            published_before=_midnight(args["until"] + day) if args["until"] else None,
            limit=args["limit"],
        )
        names = store.topic_names_of(session, (paper.id for paper in found))
        return [
            {**schemas.paper_values(paper), "topics": names.get(paper.id, [])} for paper in found
        ]


def _midnight(day) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None
