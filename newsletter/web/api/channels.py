"""/api/v1/channels: team chat channels (Slack, Discord, Matrix, Feishu/Lark) that get the digest
of their topics in their language, as `newsletter channels` has them, named by their public id.

Their webhook URLs, tokens and signing secrets are taken in and never given back: an answer
shows a URL's scheme and host only (`intake.channels.channel_row`)."""

from __future__ import annotations

from newsletter import store
from newsletter.db import session_scope
from newsletter.delivery.chat import post_test_notice
from newsletter.errors import UnknownSubscriber
from newsletter.intake.channels import channel_row, channel_spec, channel_subscriber
from newsletter.intake.rhythm import SendClock
from newsletter.models import Subscriber
from newsletter.web.api import schemas
from newsletter.web.api.answers import created
from newsletter.web.api.auth import requires, resource
from newsletter.web.common import settings

blueprint = resource("channels", "Chat channels: digests posted to Slack, Discord, Matrix, Feishu.")

SOURCE = "api"
NOT_FOUND = "no channel with this id"


def _find(session, public_id: str) -> Subscriber:
    channel = store.subscriber_by_public_id(session, public_id)
    if channel is None or channel.channel is None:  # a person is not a channel
        raise UnknownSubscriber(NOT_FOUND)
    return channel


@blueprint.route("", methods=["GET"])
@requires("subscribers:read")
@blueprint.response(200, schemas.ChannelOut(many=True))
def list_channels():
    """List the chat channels (their URLs as scheme and host only)."""
    with session_scope(settings()) as session:
        return [channel_row(channel) for channel in store.list_subscribers(session, channels=True)]


@blueprint.route("", methods=["POST"])
@requires("subscribers:write", 409, 422)
@blueprint.arguments(schemas.ChannelIn)
@blueprint.response(201, schemas.ChannelOut)
def add_channel(fields: dict):
    """Add a chat channel (as `newsletter channels add`): Slack, Discord and Feishu take a
    webhook `url` (Feishu also its optional signing `secret`); Matrix the homeserver as `url`,
    a `room` id and the bot's access `token`."""
    config = settings()
    channel = channel_spec(
        fields["platform"],
        fields["url"],
        fields["name"],
        room=fields["room"],
        secret=fields["token"] or fields["secret"],
    )
    spec = channel_subscriber(
        channel, fields["topics"], fields["language"] or config.default_language
    )
    with session_scope(config) as session:
        subscriber = store.add_channel(session, channel, spec, SOURCE, clock=SendClock.of(config))
        body = channel_row(subscriber)
    return created(body, ".show_channel", public_id=body["id"])


@blueprint.route("/<public_id>", methods=["GET"])
@requires("subscribers:read", 404)
@blueprint.response(200, schemas.ChannelOut)
def show_channel(public_id: str):
    """Show one chat channel."""
    with session_scope(settings()) as session:
        return channel_row(_find(session, public_id))


@blueprint.route("/<public_id>", methods=["DELETE"])
@requires("subscribers:write", 404)
@blueprint.arguments(schemas.SubscriberDeleteArgs, location="query")
@blueprint.response(204)
def delete_channel(args: dict, public_id: str):
    """Stop posting to a channel (history kept), or delete it and its history with
    `purge=true`."""
    with session_scope(settings()) as session:
        channel = _find(session, public_id)
        store.remove_subscriber(session, channel, SOURCE, purge=args["purge"])
    return "", 204


@blueprint.route("/<public_id>/test", methods=["POST"])
@requires("subscribers:write", 404)
@blueprint.response(200, schemas.ChannelTestOut)
def test_channel(public_id: str):
    """Post a one-line test message to the channel now (as `newsletter channels test`):
    `posted`, and the platform's answer when it refused (never the channel's URL or token)."""
    with session_scope(settings()) as session:
        found = _find(session, public_id)
    channel, answer = post_test_notice(settings(), found)
    return {"channel": channel.described(), "posted": answer.ok, "answer": answer.reason}
