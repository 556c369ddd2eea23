"""Unsubscribing by email: the `mailto:` of List-Unsubscribe, and the requests it brings.

Mail clients that do not POST the https link (RFC 8058) write to the List-Unsubscribe
`mailto:` instead. Ours is NEWSLETTER_FROM's address with the subject `unsubscribe <token>`,
the token being the https link's own (signed, namespaced "unsubscribe"): a request names its
subscriber by that token, never by its From address, which anyone can forge. A request
without a token that verifies changes nothing; `newsletter unsubscribes import` lists it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.errors import InvalidToken
from newsletter.inbound.mailboxes import UnreadableMessage
from newsletter.models import SubscriberStatus
from newsletter.tokens import UNSUBSCRIBE, read_token

_REQUEST = re.compile(r"\s*(?:(?:re|aw|fwd?)\s*:\s*)*unsubscribe(?:\s+(\S+))?\s*$", re.I)
"""`unsubscribe <token>` (after any Re:/Fwd:), the token optional."""


@dataclass(frozen=True)
class UnsubscribeRequest:
    sender: str
    """The From address, for the operator's eyes only: it decides nothing."""
    token: str
    """The token of the subject; "" when it has none."""
    source: str


def request_in(message: Message, source: str = "") -> UnsubscribeRequest | None:
    """The unsubscribe request a message is, or None (any other message, a bounce report);
    UnreadableMessage when its Subject does not decode."""
    if message.get_content_type() == "multipart/report":
        return None
    try:
        subject = str(make_header(decode_header(message.get("Subject", ""))))
    except (LookupError, MessageError, UnicodeError, ValueError) as error:
        # A broken encoded-word (an unknown charset, base64 that does not decode) may hide a
        # request whose token nobody can read: the message is listed for a person to look
        # at, and the rest of the mailbox read on.
        raise UnreadableMessage(f"its Subject does not decode: {error}") from error
    match = _REQUEST.fullmatch(subject)
    if match is None:
        return None
    sender = parseaddr(str(message.get("From", "")))[1]
    return UnsubscribeRequest(sender, match.group(1) or "", source)


def apply_request(session: Session, secret: str, request: UnsubscribeRequest) -> str:
    """Unsubscribe the request's subscriber: "unsubscribed", "already" (nothing to do, or
    nobody with that token any more), "invalid" (a token that does not verify) or "unverified"
    (no token: someone wrote "unsubscribe" by hand)."""
    if not request.token:
        return "unverified"
    try:
        public_id = read_token(secret, UNSUBSCRIBE, request.token)
    except InvalidToken:
        return "invalid"
    subscriber = store.subscriber_by_public_id(session, public_id)
    if subscriber is None or not store.set_status(
        session, subscriber, SubscriberStatus.unsubscribed, "mailto", f"from {request.sender}"
    ):
        return "already"
    return "unsubscribed"
