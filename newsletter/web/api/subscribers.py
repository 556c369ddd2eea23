"""/api/v1/subscribers: who gets the digest, as `newsletter subscribers` has them, named by their
public id (never their address or row number: nobody can walk the list by counting)."""

from __future__ import annotations

from flask import request, url_for
from werkzeug.exceptions import BadRequest

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import InvalidInput, InvalidToken, UnknownSubscriber, about
from newsletter.intake.rhythm import SendClock, schedule_change
from newsletter.intake.subscribers import SubscriberEdit, new_subscriber, normalise_language
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.tokens import make_token, read_token
from newsletter.web.api import schemas
from newsletter.web.api.answers import created
from newsletter.web.api.auth import BODY_TYPES_OF, requires, resource
from newsletter.web.common import settings

blueprint = resource("subscribers", "Subscribers: their topics, language, format and rhythm.")

CURSOR = "api-cursor"
"""The purpose a page cursor is signed for: it opens nothing else, and cannot be forged."""
SOURCE = "api"
"""How the event log names this door."""
CSV_TYPES = {"text/csv", "text/plain"}
NOT_FOUND = "no subscriber with this id"


def _clock() -> SendClock:
    return SendClock.of(settings())


def _out(session, subscriber: Subscriber) -> dict:
    return {"id": subscriber.public_id, **store.subscriber_row_of(session, subscriber, _clock())}


def _find(session, public_id: str) -> Subscriber:
    subscriber = store.subscriber_by_public_id(session, public_id)
    if subscriber is None or subscriber.channel is not None:  # channels: /api/v1/channels
        raise UnknownSubscriber(NOT_FOUND)
    return subscriber


def _rhythm(fields: dict):
    return schedule_change(fields["cadence"], fields["day"], fields["hour"], fields["timezone"])


@blueprint.route("", methods=["GET"])
@requires("subscribers:read", 422)
@blueprint.arguments(schemas.SubscriberListArgs, location="query")
@blueprint.response(200, schemas.SubscriberPage)
def list_subscribers(args: dict):
    """List subscribers, a page at a time (`limit`; the answer's `next`, also in a `Link`
    header, is the next page), filtered by status, topic, language and a part of the
    address."""
    config = settings()
    after = _cursor_position(config, args["cursor"])
    with session_scope(config) as session:
        topic = store.get_topic(session, args["topic"]) if args["topic"] else None
        language = None
        if args["language"]:
            with about("language"):
                language = normalise_language(args["language"])
        page = store.subscribers_page(
            session,
            after_id=after,
            limit=args["limit"] + 1,  # one more: is there a next page?
            topic=topic,
            status=SubscriberStatus(args["status"]) if args["status"] else None,
            language=language,
            email_contains=args["email"],
        )
        shown = page[: args["limit"]]
        rows = store.subscriber_rows(session, shown, _clock())
        items = [{"id": s.public_id, **row} for s, row in zip(shown, rows, strict=True)]
        last = shown[-1].id if shown else None
    headers = {}
    next_url = None
    if len(page) > args["limit"] and last is not None:
        query = {**request.args.to_dict(), "cursor": make_token(config.secret(), CURSOR, str(last))}
        next_url = url_for(".list_subscribers", _external=False, **query)
        headers["Link"] = f'<{next_url}>; rel="next"'
    return {"items": items, "next": next_url}, 200, headers


def _cursor_position(config: Settings, cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(read_token(config.secret(), CURSOR, cursor))
    except (InvalidToken, ValueError):
        error = InvalidInput("the cursor is not one this API gave (start again without it)")
        error.field = "cursor"
        raise error from None


@blueprint.route("", methods=["POST"])
@requires("subscribers:write", 409, 422)
@blueprint.arguments(schemas.SubscriberIn)
@blueprint.response(201, schemas.SubscriberOut)
def add_subscriber(fields: dict):
    """Add a subscriber, active at once (as `newsletter subscribers add`: the operator's act,
    no confirmation email)."""
    config = settings()
    spec = new_subscriber(
        fields["email"],
        fields["topics"],
        name=fields["name"],
        language=fields["language"],
        mail_format=fields["format"],
        follows=fields["follows"],
        schedule=_rhythm(fields),
        default_language=config.default_language,
        check_deliverability=config.check_deliverability,
    )
    with session_scope(config) as session:
        body = _out(session, store.add_subscriber(session, spec, source=SOURCE, clock=_clock()))
    return created(body, ".show_subscriber", public_id=body["id"])


@blueprint.route("/<public_id>", methods=["GET"])
@requires("subscribers:read", 404)
@blueprint.response(200, schemas.SubscriberOut)
def show_subscriber(public_id: str):
    """Show a subscriber: topics, language, format, followed authors, rhythm, when next due."""
    with session_scope(settings()) as session:
        return _out(session, _find(session, public_id))


@blueprint.route("/<public_id>", methods=["PATCH"])
@requires("subscribers:write", 404, 422)
@blueprint.arguments(schemas.SubscriberChange)
@blueprint.response(200, schemas.SubscriberOut)
def edit_subscriber(fields: dict, public_id: str):
    """Change a subscriber's topics, language, format, name, followed authors or rhythm (as
    `newsletter subscribers edit`); logged as one `changed` event."""
    change = SubscriberEdit.checked(
        add_topics=fields["add_topics"],
        remove_topics=fields["remove_topics"],
        language=fields["language"],
        mail_format=fields["format"],
        name=fields["name"],
        follow=fields["follow"],
        unfollow=fields["unfollow"],
        schedule=_rhythm(fields),
        resubscribe=fields["resubscribe"],
    )
    with session_scope(settings()) as session:
        subscriber = _find(session, public_id)
        row = store.apply_subscriber_edit(
            session, subscriber, change, clock=_clock(), source=SOURCE
        )
        return {"id": subscriber.public_id, **row}


@blueprint.route("/<public_id>", methods=["DELETE"])
@requires("subscribers:write", 404)
@blueprint.arguments(schemas.SubscriberDeleteArgs, location="query")
@blueprint.response(204)
def delete_subscriber(args: dict, public_id: str):
    """Unsubscribe someone (history kept), or delete them and their history with
    `purge=true`."""
    with session_scope(settings()) as session:
        subscriber = _find(session, public_id)
        store.remove_subscriber(session, subscriber, SOURCE, purge=args["purge"])
    return "", 204


@blueprint.route("/<public_id>/events", methods=["GET"])
@requires("subscribers:read", 404)
@blueprint.response(200, schemas.EventOut(many=True))
def subscriber_events(public_id: str):
    """A subscriber's history: each request, confirmation, change, pause and unsubscribe, with
    when and through which door."""
    with session_scope(settings()) as session:
        return store.events_of(session, _find(session, public_id))


@blueprint.route("/import", methods=["POST"])
@requires("subscribers:write", 413, 415)
@blueprint.arguments(schemas.ImportArgs, location="query")
@blueprint.response(200, schemas.ImportOut)
@blueprint.doc(
    requestBody={
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "The CSV `newsletter subscribers import` reads (up to 1 MB).",
    },
)
def import_subscribers(args: dict):
    """Import subscribers from CSV (email,name,topics,language,format,follows,cadence,day,
    hour,timezone): every rejected row is reported with its line, the good rows are kept (as
    `newsletter subscribers import`)."""
    try:
        text = request.get_data(cache=False).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the CSV is not UTF-8 text ({error})") from error
    config = settings()
    with session_scope(config) as session:
        report = store.import_subscribers(
            session,
            text,
            update=args["update"],
            clock=_clock(),
            default_language=config.default_language,
            check_deliverability=config.check_deliverability,
        )
    return {
        "outcomes": report.outcomes,
        "rejected": report.rejected,
        "summary": report.summary(),
    }


BODY_TYPES_OF[f"{blueprint.name}.import_subscribers"] = CSV_TYPES
