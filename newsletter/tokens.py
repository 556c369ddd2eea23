"""Signed, namespaced tokens: one made for a purpose opens nothing else.

The purpose is itsdangerous' salt, so an unsubscribe token is useless as, say, a confirmation
token even though both sign a subscriber's public id with the same secret.
"""

from __future__ import annotations

import binascii
import hmac
import time
from datetime import date
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import int_to_bytes

from newsletter.errors import ExpiredToken, InvalidToken

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
"""A subscription request (who, topics, language); expires after NEWSLETTER_CONFIRM_MAX_AGE."""
PREFERENCES = "preferences"
PAPER = "paper"
"""A reader's link to one paper's actions (save, more like this, less like this): signs
[public id, arXiv id]."""
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


class DigestLinks:
    """A digest's three links for each subscriber (unsubscribe, preferences, web version), made
    for a whole list at once.

    The tokens are `make_token`'s (itsdangerous' URLSafeTimedSerializer, which `read_token`
    checks), but itsdangerous spends ~40 µs a token in its layers (zlib alone is half: it
    tries to compress every payload), and a digest needs three a message. Here the keys are
    derived once, the payload (the same for the three purposes) serialised once a subscriber
    and never compressed (a 22-character random id never shrinks; itsdangerous reads both
    forms), and the timestamp made once a second: one HMAC a token is left.
    """

    def __init__(self, base_url: str, secret: str, issue_date: date) -> None:
        self.prefixes = (
            f"{base_url}/unsubscribe/",
            f"{base_url}/preferences/",
            f"{base_url}/digests/{issue_date.isoformat()}/for/",
        )
        signers = [
            URLSafeTimedSerializer(secret, salt=purpose).make_signer()
            for purpose in (UNSUBSCRIBE, PREFERENCES, VIEW)
        ]
        # Keyed once: each token copies its keyed HMAC rather than keying one afresh.
        self._macs = [
            hmac.new(signer.derive_key(), digestmod=signer.digest_method) for signer in signers
        ]
        self._second = -1
        self._timestamp = ""

    def links(self, public_id: str) -> tuple[str, str, str]:
        """(unsubscribe, preferences, web version) URLs of one subscriber."""
        now = int(time.time())
        if now != self._second:
            self._second, self._timestamp = now, "." + _base64(int_to_bytes(now))
        # What itsdangerous' URL-safe serializers sign: their compact JSON, base64-encoded.
        value = _base64(encode_basestring(public_id).encode()) + self._timestamp
        signed = value.encode()
        unsubscribe, preferences, view = self.prefixes
        mac_u, mac_p, mac_v = self._macs
        return (
            f"{unsubscribe}{value}.{_base64(_signature(mac_u, signed))}",
            f"{preferences}{value}.{_base64(_signature(mac_p, signed))}",
            f"{view}{value}.{_base64(_signature(mac_v, signed))}",
        )


def _signature(keyed: hmac.HMAC, data: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(data)
    return mac.digest()


def _base64(data: bytes) -> str:
    """itsdangerous' `base64_encode` (URL-safe, unpadded), as text."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE).decode()


_URL_SAFE = bytes.maketrans(b"+/", b"-_")
