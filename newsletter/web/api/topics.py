"""/api/v1/topics: what each topic matches on arXiv, as `newsletter topics` has it."""

from __future__ import annotations

from newsletter import store
from newsletter.daily.fetch import arxiv_source, topic_query
from newsletter.db import session_scope
from newsletter.intake.topics import TopicEdit, TopicSpec
from newsletter.web.api import schemas
from newsletter.web.api.answers import created
from newsletter.web.api.auth import requires, resource
from newsletter.web.common import settings

blueprint = resource("topics", "Topics: what each one matches on arXiv.")


def _out(session, topic) -> dict:
    row = store.topic_rows(session, [topic])[0]
    return {**row, "arxiv_query": topic_query(topic)}


@blueprint.route("", methods=["GET"])
@requires("topics:read")
@blueprint.response(200, schemas.TopicOut(many=True))
def list_topics():
    """List the topics, with their subscribers and papers."""
    with session_scope(settings()) as session:
        topics = store.list_topics(session)
        rows = store.topic_rows(session, topics)
        return [
            {**row, "arxiv_query": topic_query(topic)}
            for topic, row in zip(topics, rows, strict=True)
        ]


@blueprint.route("", methods=["POST"])
@requires("topics:write", 409, 422)
@blueprint.arguments(schemas.TopicIn)
@blueprint.response(201, schemas.TopicOut)
def add_topic(fields: dict):
    """Add a topic (as `newsletter topics add`)."""
    spec = TopicSpec(
        name=fields["name"],
        description=fields["description"],
        keywords=tuple(fields["keywords"]),
        categories=tuple(fields["categories"]),
        excludes=tuple(fields["exclude"]),
        raw_query=fields["query"],
    )
    with session_scope(settings()) as session:
        body = _out(session, store.add_topic(session, spec))
    return created(body, ".show_topic", name=body["name"])


@blueprint.route("/<name>", methods=["GET"])
@requires("topics:read", 404)
@blueprint.response(200, schemas.TopicOut)
def show_topic(name: str):
    """Show one topic and the arXiv query it runs."""
    with session_scope(settings()) as session:
        return _out(session, store.get_topic(session, name))


@blueprint.route("/<name>", methods=["PATCH"])
@requires("topics:write", 404, 422)
@blueprint.arguments(schemas.TopicChange)
@blueprint.response(200, schemas.TopicOut)
def edit_topic(fields: dict, name: str):
    """Change what a topic matches (as `newsletter topics edit`)."""
    change = TopicEdit(
        tuple(fields["add_keywords"]),
        tuple(fields["remove_keywords"]),
        tuple(fields["add_categories"]),
        tuple(fields["remove_categories"]),
        tuple(fields["add_excludes"]),
        tuple(fields["remove_excludes"]),
        fields["query"],
        fields["description"],
    )
    with session_scope(settings()) as session:
        topic = store.get_topic(session, name)
        store.apply_topic_spec(topic, change.applied_to(topic))
        return _out(session, topic)


@blueprint.route("/<name>", methods=["DELETE"])
@requires("topics:write", 404, 409)
@blueprint.arguments(schemas.TopicDeleteArgs, location="query")
@blueprint.response(204)
def delete_topic(args: dict, name: str):
    """Remove a topic (its subscribers keep their other topics); `force=true` also when
    active subscribers follow it."""
    with session_scope(settings()) as session:
        topic = store.get_topic(session, name)
        store.remove_topic(session, topic, even_if_followed=args["force"])
    return "", 204


@blueprint.route("/<name>/test", methods=["POST"])
@requires("topics:write", 404, 503)
@blueprint.arguments(schemas.TopicTestArgs, location="query")
@blueprint.response(200, schemas.TopicTestOut)
def test_topic(args: dict, name: str):
    """Run a topic's query against arXiv now and show what it matches; stores nothing (as
    `newsletter topics test`). One arXiv request: arXiv's pace applies."""
    with session_scope(settings()) as session:
        topic = store.get_topic(session, name)
        query, topic_name = topic_query(topic), topic.name
    total, papers = arxiv_source(settings()).probe(query, args["limit"])
    return {
        "topic": topic_name,
        "query": query,
        "total": total,
        "papers": papers,
    }
