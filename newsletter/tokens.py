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
from typing import Any, NamedTuple
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import int_to_bytes

from newsletter.errors import ExpiredToken, InvalidToken

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
"""A subscription request (who, topics, language); expires after NEWSLETTER_CONFIRM_MAX_AGE."""
PREFERENCES = "preferences"
VIEW = "view"
"""A subscriber's own web version of a digest (their topics, their language)."""
PAPERS = "papers"
"""A reader's paper links: their public id, one token a message. A card's Save / More like this
/ Less like this links are `/papers/<token>/<arXiv id>/save` (`/more`, `/less`). It opens the
one-button page of an action, never records it (mail scanners follow every link)."""
PAPER = "paper"
"""The paper links of messages sent before `PAPERS`: `[public_id, arxiv_id]`, one token a card,
`/papers/<token>/save`. Still read, never made."""
PAPER_ACTION = "paper-action"
"""The form of that page: `[public_id, arxiv_id, action]`, so the POST that records something is
signed for one reader, one paper and one action."""
LIBRARY = "library"
"""A reader's reading list (`/library/<token>`, its BibTeX and Atom feed); never expires."""


def make_token(secret: str, purpose: str, value: str | list[str] | dict[str, Any]) -> str:
    return URLSafeTimedSerializer(secret, salt=purpose).dumps(value)


def read_token(
    secret: str, purpose: str, token: str, max_age: float | None = None, expect: type = str
) -> Any:
    """The value signed in a token made for `purpose`; InvalidToken when it is anything else.

    `max_age` (seconds) makes the token expire; unsubscribe links never do, since a reader may
    open a months-old email. `expect` is the type the value must have (`str`, `list` or `dict`);
    a `list` must hold text only.
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
    if expect is list and not all(isinstance(item, str) for item in value):
        raise InvalidToken(f"this {purpose} link is not valid")
    return value


def unsubscribe_url(base_url: str, secret: str, public_id: str) -> str:
    return f"{base_url}/unsubscribe/{make_token(secret, UNSUBSCRIBE, public_id)}"


def preferences_url(base_url: str, secret: str, public_id: str) -> str:
    return f"{base_url}/preferences/{make_token(secret, PREFERENCES, public_id)}"


def library_url(base_url: str, secret: str, public_id: str) -> str:
    """The reader's reading list: the papers they saved, with BibTeX and an Atom feed."""
    return f"{base_url}/library/{make_token(secret, LIBRARY, public_id)}"


def papers_url(base_url: str, secret: str, public_id: str) -> str:
    """Where the reader's paper links begin: `paper_link` adds a paper and `/save` (`/more`,
    `/less`) follows."""
    return f"{base_url}/papers/{make_token(secret, PAPERS, public_id)}"


def paper_link(papers: str, arxiv_id: str) -> str:
    """A reader's link to a paper's actions, `papers` their `papers_url`. An arXiv id is
    letters, digits, `.`, `-` and (old style) `/`: anything else is percent-encoded."""
    return f"{papers}/{quote(arxiv_id, safe='/')}"


def web_version_url(base_url: str, secret: str, public_id: str, issue_date: date) -> str:
    """The subscriber's own web version of that day's digest."""
    token = make_token(secret, VIEW, public_id)
    return f"{base_url}/digests/{issue_date.isoformat()}/for/{token}"


class ReaderLinks(NamedTuple):
    """One subscriber's links in a digest: unsubscribe, preferences and web version URLs, and
    the `papers_url` their cards' links begin with."""

    unsubscribe: str
    preferences: str
    web_version: str
    papers: str


class DigestLinks:
    """A digest's links for each subscriber (`ReaderLinks`), made for a whole list at once.

    The tokens are `make_token`'s (itsdangerous' URLSafeTimedSerializer, which `read_token`
    checks), but itsdangerous spends ~40 µs a token in its layers (zlib alone is half: it
    tries to compress every payload), and a digest needs four a message. Here the keys are
    derived once, the payload (the same for the four purposes) serialised once a subscriber
    and never compressed (a 22-character random id never shrinks; itsdangerous reads both
    forms), and the timestamp made once a second: one HMAC a token is left.
    """

    def __init__(self, base_url: str, secret: str, issue_date: date | str) -> None:
        """`issue_date`: the digest's date, or its `Digest.path` (a span's)."""
        path = issue_date.isoformat() if isinstance(issue_date, date) else issue_date
        self.prefixes = (  # in ReaderLinks' order
            f"{base_url}/unsubscribe/",
            f"{base_url}/preferences/",
            f"{base_url}/digests/{path}/for/",
            f"{base_url}/papers/",
        )
        signers = [
            URLSafeTimedSerializer(secret, salt=purpose).make_signer()
            for purpose in (UNSUBSCRIBE, PREFERENCES, VIEW, PAPERS)
        ]
        # Keyed once: each token copies its keyed HMAC rather than keying one afresh.
        self._macs = [
            hmac.new(signer.derive_key(), digestmod=signer.digest_method) for signer in signers
        ]
        self._second = -1
        self._timestamp = ""

    def links(self, public_id: str) -> ReaderLinks:
        """One subscriber's links."""
        now = int(time.time())
        if now != self._second:
            self._second, self._timestamp = now, "." + _base64(int_to_bytes(now))
        # What itsdangerous' URL-safe serializers sign: their compact JSON, base64-encoded.
        value = _base64(encode_basestring(public_id).encode()) + self._timestamp
        signed = value.encode()
        unsubscribe, preferences, view, papers = self.prefixes
        mac_u, mac_p, mac_v, mac_papers = self._macs
        return ReaderLinks(
            f"{unsubscribe}{value}.{_base64(_signature(mac_u, signed))}",
            f"{preferences}{value}.{_base64(_signature(mac_p, signed))}",
            f"{view}{value}.{_base64(_signature(mac_v, signed))}",
            f"{papers}{value}.{_base64(_signature(mac_papers, signed))}",
        )


def _signature(keyed: hmac.HMAC, data: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(data)
    return mac.digest()


def _base64(data: bytes) -> str:
    """itsdangerous' `base64_encode` (URL-safe, unpadded), as text."""
    return _base64_bytes(data).decode()


def _base64_bytes(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE)


_URL_SAFE = bytes.maketrans(b"+/", b"-_")
