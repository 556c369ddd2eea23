"""What a webhook is, checked: its URL, the events it asks for, its secret, and the envelope
every event it is told of comes in. The CLI and the JSON API both check what they are given
here, so the same input gets the same answer at either door.

Deliveries follow the Standard Webhooks convention (https://www.standardwebhooks.com): the
body is `{"id", "type", "timestamp", "data"}`, and the secret is `whsec_<base64 key>`.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from newsletter.config.urls import check_web_url
from newsletter.errors import InvalidInput
from newsletter.userinput import one_line

EVENTS = {
    "digest.built": "a digest is built (ranked, translated): readers are given it from now on",
    "digest.sent": "a digest's deliveries are all finished (sent, failed or skipped)",
    "subscriber.confirmed": "someone confirmed their subscription (double opt-in)",
    "subscriber.unsubscribed": "a subscriber left (any door: CLI, web, one-click, by email)",
    "subscriber.bounced": "an address was marked bounced (a bounce report, a 5xx reply)",
}
"""The events a webhook may ask for, and when each happens."""
TEST_EVENT = "webhook.test"
"""What `newsletter webhooks test` posts: no webhook asks for it, every one may be sent it."""
SUBSCRIBER_EVENTS = {
    "confirmed": "subscriber.confirmed",
    "unsubscribed": "subscriber.unsubscribed",
    "bounced": "subscriber.bounced",
}
"""A subscriber's logged event (`Event.kind`) that is a webhook event, and its name."""


@dataclass(frozen=True)
class WebhookSpec:
    """A webhook as the operator asks for it: a URL and the events it is told of, checked."""

    url: str
    events: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", webhook_url(self.url))
        object.__setattr__(self, "events", event_names(self.events))


MAX_URL = 2000


def webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host, on one line, without a password in it."""
    url = one_line(url, "the webhook's URL")
    if " " in url:
        raise InvalidInput(f"the webhook URL {url!r} has a space in it: encode it as %20")
    try:
        check_web_url(url)
    except ValueError as error:
        raise InvalidInput(f"the webhook URL {url!r} {error}") from error
    if len(url) > MAX_URL:
        raise InvalidInput(f"the webhook URL is over {MAX_URL} characters")
    if urlsplit(url).password is not None:
        raise InvalidInput(
            f"the webhook URL {shown_url(url)!r} has a password in it: deliveries are signed"
            " with the webhook's secret instead (see `newsletter webhooks add --help`)"
        )
    return url


def event_names(names: Iterable[str]) -> tuple[str, ...]:
    """The events, each once, in the order given; an unknown name is refused with the list."""
    wanted = tuple(dict.fromkeys(name.strip() for name in names))
    if not wanted:
        raise InvalidInput(f"a webhook needs at least one event: {', '.join(EVENTS)}")
    for name in wanted:
        if name not in EVENTS:
            raise InvalidInput(f"unknown webhook event {name!r}: use one of {', '.join(EVENTS)}")
    return wanted


SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


MESSAGE_ID_PREFIX = "msg_"
"""An event's id is this and 32 hex digits (a random UUID's)."""


def envelope(event: str, data: dict, at: datetime | None = None) -> dict:
    """An event as every receiver gets it: a unique id (the `webhook-id` header too, the same
    on every retry, so a receiver can drop a repeat), its type, when it happened, its data."""
    return {
        "id": f"{MESSAGE_ID_PREFIX}{uuid.uuid4().hex}",
        "type": event,
        "timestamp": envelope_timestamp(at or datetime.now(UTC)),
        "data": data,
    }


def envelope_timestamp(at: datetime) -> str:
    """An envelope's `timestamp`: UTC, to the second, `Z`."""
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def shown_url(url: str) -> str:
    """A webhook's URL as `list` and `status` print it: no user, password or query (a token
    some services put there); the path stays, to tell two endpoints of one host apart."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")
