"""Signed, namespaced tokens: one made for a purpose opens nothing else.

The purpose is itsdangerous' salt, so an unsubscribe token is useless as, say, a confirmation
token even though both sign a subscriber's public id with the same secret.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsletter.errors import ExpiredToken, InvalidToken

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
"""A subscription request (who, topics, language); expires after NEWSLETTER_CONFIRM_MAX_AGE."""
PREFERENCES = "preferences"
VIEW = "view"
"""A subscriber's own web version of a digest (their topics, their language)."""


def make_token(secret: str, purpose: str, value: str | dict[str, Any]) -> str:
    return URLSafeTimedSerializer(secret, salt=purpose).dumps(value)


def read_token(
    secret: str, purpose: str, token: str, max_age: float | None = None, expect: type = str
) -> Any:
    """The value signed in a token made for `purpose`; InvalidToken when it is anything else.

    `max_age` (seconds) makes the token expire; unsubscribe links never do, since a reader may
    open a months-old email. `expect` is the type the value must have (`str` or `dict`).
    """
    serializer = URLSafeTimedSerializer(secret, salt=purpose)
    try:
        value = serializer.loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise ExpiredToken(f"this {purpose} link has expired") from error
    except BadSignature as error:
        raise InvalidToken(f"this {purpose} link is not valid") from error
    if not isinstance(value, expect):
        raise InvalidToken(f"this {purpose} link is not valid")
    return value


def unsubscribe_url(base_url: str, secret: str, public_id: str) -> str:
    return f"{base_url}/unsubscribe/{make_token(secret, UNSUBSCRIBE, public_id)}"


def preferences_url(base_url: str, secret: str, public_id: str) -> str:
    return f"{base_url}/preferences/{make_token(secret, PREFERENCES, public_id)}"


def web_version_url(base_url: str, secret: str, public_id: str, issue_date: date) -> str:
    """The subscriber's own web version of that day's digest."""
    token = make_token(secret, VIEW, public_id)
    return f"{base_url}/digests/{issue_date.isoformat()}/for/{token}"
