"""Signed, namespaced tokens: one made for a purpose opens nothing else.

The purpose is itsdangerous' salt, so an unsubscribe token is useless as, say, a confirmation
token even though both sign a subscriber's public id with the same secret.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsletter.errors import InvalidToken

UNSUBSCRIBE = "unsubscribe"


def make_token(secret: str, purpose: str, value: str) -> str:
    return URLSafeTimedSerializer(secret, salt=purpose).dumps(value)


def read_token(secret: str, purpose: str, token: str, max_age: int | None = None) -> str:
    """The value signed in a token made for `purpose`; InvalidToken when it is anything else.

    `max_age` (seconds) makes the token expire; unsubscribe links never do, since a reader may
    open a months-old email.
    """
    serializer = URLSafeTimedSerializer(secret, salt=purpose)
    try:
        value = serializer.loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise InvalidToken(f"this {purpose} link has expired") from error
    except BadSignature as error:
        raise InvalidToken(f"this {purpose} link is not valid") from error
    if not isinstance(value, str):
        raise InvalidToken(f"this {purpose} link is not valid")
    return value


def unsubscribe_url(base_url: str, secret: str, public_id: str) -> str:
    return f"{base_url}/unsubscribe/{make_token(secret, UNSUBSCRIBE, public_id)}"
