"""What a chat channel subscriber is, checked: its platform, where its posts go (a webhook URL,
or a Matrix homeserver, room and token), its label, and, like a person's, its topics and
language (checked by `intake.subscribers`, the one place that knows them).

The command line uses this now; the JSON API is to use the same checks, not a copy.

A URL must be http(s); https, except on a loopback host (127.0.0.0/8, ::1, localhost), where a
local test server or a bridge on the same machine may speak plain http: a webhook URL is a
secret (whoever has it can post), and must not cross a network in clear text.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.errors import InvalidInput
from newsletter.intake.subscribers import SubscriberSpec, normalise_language, subscriber_name
from newsletter.models import ChatPlatform, Subscriber
from newsletter.userinput import one_line

MAX_URL = 2000
"""Longer is no webhook URL anyone was given."""
MATRIX_ROOM_ID = re.compile(r"![^\s:]+:[A-Za-z0-9.\-\[\]:]+")
"""A room id, `!opaque:server.name` (an alias, `#name:server`, is not accepted: its room can
change)."""
KEY_PREFIX = "channel"


@dataclass(frozen=True)
class ChannelSpec:
    """A chat channel to post digests to, checked (`channel_spec` makes one)."""

    platform: ChatPlatform
    url: str
    """The webhook URL; for Matrix, the homeserver's base URL."""
    label: str
    """How the operator names it (`#lab-papers`): stored as the subscriber's `email`."""
    room: str | None = None
    """The Matrix room id; None elsewhere."""
    secret: str | None = None
    """The Matrix access token, or the Feishu signing secret (optional there)."""

    @classmethod
    def of(cls, subscriber: Subscriber) -> ChannelSpec:
        """The channel a stored channel subscriber posts to."""
        return cls(
            ChatPlatform(subscriber.channel),
            subscriber.channel_url or "",
            subscriber.email,
            subscriber.channel_room,
            subscriber.channel_secret,
        )

    def described(self) -> str:
        """How messages and errors name it: its platform and label, never its URL."""
        return f"{self.platform.value} channel {self.label!r}"

    @property
    def key(self) -> str:
        """The subscriber's `email_key`: one subscriber per channel (platform, URL and room),
        whatever it is labelled, and never an address's (an address always has an `@`)."""
        place = f"{self.url}\n{self.room or ''}".encode()
        return f"{KEY_PREFIX}:{self.platform.value}:{hashlib.sha256(place).hexdigest()}"


def is_channel_key(key: str) -> bool:
    return key.startswith(f"{KEY_PREFIX}:")


def normalise_platform(value: str) -> ChatPlatform:
    """slack, discord, matrix or feishu (lark is Feishu's international name); raises otherwise."""
    text = value.strip().lower()
    if text == "lark":
        text = ChatPlatform.feishu.value
    try:
        return ChatPlatform(text)
    except ValueError:
        choices = ", ".join(platform.value for platform in ChatPlatform)
        raise InvalidInput(f"{value!r} is not a chat platform (use {choices})") from None


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_url(value: str, what: str = "the URL") -> str:
    """An http(s) URL with a host and no credentials in it; https unless the host is loopback.
    The error never repeats the URL (it is a secret); it says what is wrong with it."""
    text = one_line(value, what)
    if not text:
        raise InvalidInput(f"{what} is missing")
    if len(text) > MAX_URL or " " in text:
        raise InvalidInput(f"{what} is not a URL (over {MAX_URL} characters, or spaces in it)")
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises on a port that is no number)
    except ValueError:
        raise InvalidInput(f"{what} is not a URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(f"{what} must be an http(s) URL with a host, like https://host/path")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{what} must not hold a user name or password")
    if parts.scheme == "http" and not is_loopback(host):
        raise InvalidInput(f"{what} must be https (plain http only to this machine, 127.0.0.1)")
    return text


def matrix_room(value: str | None) -> str:
    text = one_line(value or "", "the room id")
    if not MATRIX_ROOM_ID.fullmatch(text):
        raise InvalidInput(
            f"{text!r} is not a Matrix room id (like !AbCdEf:example.org: in Element, room"
            " settings → Advanced)"
        )
    return text


def secret_text(value: str, what: str) -> str:
    """A token or secret: one printable line; the error never repeats it."""
    text = value.strip()
    if not text or any(not character.isprintable() or character.isspace() for character in text):
        raise InvalidInput(f"{what} is empty or holds spaces or control characters")
    return text


def channel_spec(
    platform: str,
    url: str,
    label: str,
    *,
    room: str | None = None,
    secret: str | None = None,
) -> ChannelSpec:
    """A channel checked: Slack, Discord and Feishu take a webhook URL (Feishu also its
    optional signing secret); Matrix a homeserver URL, a room id and an access token."""
    chosen = normalise_platform(platform)
    name = subscriber_name(label)
    if not name:
        raise InvalidInput("a channel needs a name (--name '#lab-papers')")
    if chosen == ChatPlatform.matrix:
        homeserver = channel_url(url, "the homeserver URL").rstrip("/")
        if not secret:
            raise InvalidInput("a Matrix channel needs the bot account's access token (--token)")
        token = secret_text(secret, "the access token")
        return ChannelSpec(chosen, homeserver, name, matrix_room(room), token)
    if room:
        raise InvalidInput("a room id is for Matrix channels only")
    if secret and chosen != ChatPlatform.feishu:
        raise InvalidInput("a token or signing secret is for Matrix and Feishu channels only")
    signing = secret_text(secret, "the signing secret") if secret else None
    return ChannelSpec(chosen, channel_url(url, "the webhook URL"), name, None, signing)


def channel_subscriber(
    channel: ChannelSpec, topics: tuple[str, ...] | list[str], language: str
) -> SubscriberSpec:
    """What the channel reads, checked as a person's would be: its topics and language."""
    return SubscriberSpec(
        channel.label, tuple(topics), channel.label, normalise_language(language), None, ()
    )


def channel_row(channel: Subscriber) -> dict:
    """What the command line and the API show of a channel: never its URL's path (the secret
    part of a webhook), its token or its signing secret."""
    return {
        "id": channel.public_id,
        "name": channel.email,
        "platform": ChatPlatform(channel.channel).value,
        "url": masked_url(channel.channel_url or ""),
        "room": channel.channel_room,
        "topics": [topic.name for topic in channel.topics],
        "language": channel.language,
        "status": channel.status.value,
        "created_at": channel.created_at.isoformat(timespec="seconds"),
    }


def masked_url(url: str) -> str:
    """What may be shown of a channel's URL: its scheme and host (the path is the secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
