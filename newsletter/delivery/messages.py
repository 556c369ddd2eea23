"""Each claimed row's message: its segment's body rendered once per process, encoded once into a
`MessageTemplate` with a slot where each paper goes, each paper's card encoded once; a reader's
message is the template with their address, Message-ID and links substituted in, and their
papers put in the slots in their own order (their ranking, or newest first), each card with
the reader's own link to its actions (save, more like this, less like this).

Nothing is rendered or encoded per message, and a message's bytes exist only while it is being
sent. An address with a non-ASCII local part is the exception: its UTF-8 headers are composed
whole, the slow way, which knows how.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.delivery.outgoing import Outgoing
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import SegmentKey
from newsletter.message.addresses import smtp_address
from newsletter.message.compose import compose, mailto_for, message_bytes
from newsletter.message.mail_merge import MessageTemplate, encoded
from newsletter.models import MailFormat
from newsletter.render.cards import PAPER_CARDS, PAPER_PLACEHOLDER, text_piece
from newsletter.render.email import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    WEB_VERSION_PLACEHOLDER,
    Frame,
    RenderedBody,
    personalise,
    render_email,
)
from newsletter.store import ClaimedDelivery
from newsletter.tokens import DigestLinks, PaperLinks

BODY_FIELDS = {
    "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    "preferences_url": PREFERENCES_PLACEHOLDER,
    "web_version_url": WEB_VERSION_PLACEHOLDER,
}
"""The per-subscriber links of a rendered body, by the name `MessageTemplate` fills in."""


class MessageBuilder:
    """One digest's messages, for one sending process; keeps its segments' templates.

    A process keeps one `_SegmentMessages` per segment it has sent to (a template per format,
    about one message's size each, and the segment's encoded cards), so rows claimed in any
    order never render twice.
    """

    def __init__(self, settings: Settings, digest_id: int, edition: Edition | None = None) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.edition = edition
        self._links: DigestLinks | None = None
        self._segments: dict[SegmentKey, _SegmentMessages] = {}
        self._rankings: dict[int, list[str]] = {}
        self._followed: dict[int, tuple[str, ...]] = {}
        # The Date of this sender's messages: when it began (headers are composed once).
        self._date = datetime.now(UTC)
        self._sender = settings.sender_email  # a property that parses NEWSLETTER_FROM: once
        self._papers = PaperLinks(settings.base_url, settings.secret())

    def prepare(self, session: Session, rows: list[ClaimedDelivery]) -> None:
        """Read what `message` needs for these rows: the digest's edition on first use (unless
        it was given), the stored translations of languages not seen before, the readers'
        rankings."""
        if not rows:
            return
        settings = self.settings
        if self.edition is None:
            digest = store.digest_by_id(session, self.digest_id)
            self.edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        if self._links is None:
            issue_date = self.edition.issue_date
            self._links = DigestLinks(settings.base_url, settings.secret(), issue_date)
        self.edition.load_languages(session, {row.language for row in rows})
        subscriber_ids = [row.subscriber_id for row in rows]
        self._followed = self.edition.followed_by(session, subscriber_ids)
        if self.edition.options.ranked:
            self._rankings = self.edition.rankings(session, subscriber_ids)

    def message(self, row: ClaimedDelivery) -> Outgoing:
        """One subscriber's message: their segment's template with their values substituted
        and their papers in their order (once `prepare` has read what the row needs)."""
        followed = self._followed.get(row.subscriber_id, ())
        segment = self._segment((row.topic_ids, row.language, followed))
        orders = segment.orders(self._rankings.get(row.subscriber_id))
        unsubscribe, preferences, web_version = self._links.links(row.public_id)
        message_id = row.message_id if row.message_id.startswith("<") else f"<{row.message_id}>"
        mailto = mailto_for(self._sender, unsubscribe.rsplit("/", 1)[1])
        recipient = smtp_address(row.email)  # an internationalised domain in IDNA
        public_id = row.public_id
        if recipient.isascii():
            data = segment.template(row.format).bytes_for(
                {
                    "to": recipient,
                    "message_id": message_id,
                    "unsubscribe_url": unsubscribe,
                    "unsubscribe_mailto": mailto,
                    "preferences_url": preferences,
                    "web_version_url": web_version,
                },
                segment.slots(orders, lambda arxiv_id: self.paper_url(public_id, arxiv_id)),
            )
        else:  # a non-ASCII local part: UTF-8 headers, composed the slow way, which knows how
            body = personalise(
                segment.body(),
                unsubscribe,
                preferences,
                web_version,
                lambda arxiv_id: self.paper_url(public_id, arxiv_id),
                orders,
            )
            composed = self._compose(recipient, message_id, (unsubscribe, mailto), body, row.format)
            data = message_bytes(composed)
        return Outgoing(row.delivery_id, recipient, self._sender, message_id, data)

    def paper_url(self, public_id: str, arxiv_id: str) -> str:
        """The reader's own link to a paper's actions (`/save`, `/more`, `/less` follow)."""
        return self._papers.prefix + self._papers.token(public_id, arxiv_id)

    def _segment(self, key: SegmentKey) -> _SegmentMessages:
        segment = self._segments.get(key)
        if segment is None:
            content = self.edition.content(*key)
            body = render_email(
                content,
                sender_name=self.settings.sender_name,
                ranked=self.edition.options.ranked,
            )
            segment = self._segments[key] = _SegmentMessages(self.settings, body, self._date)
        return segment

    def _compose(
        self,
        to: str,
        message_id: str,
        unsubscribe: tuple[str, str],
        body: RenderedBody,
        mail_format: MailFormat,
    ):
        """The message composed whole; `unsubscribe` is (https URL, mailto)."""
        settings = self.settings
        return compose(
            sender=settings.from_address,
            to=to,
            subject=body.subject,
            html=body.html if mail_format == MailFormat.html else None,
            text=body.text,
            message_id=message_id,
            list_id=settings.list_id,
            unsubscribe_url=unsubscribe[0],
            unsubscribe_mailto=unsubscribe[1],
            date=self._date,
        )


class _SegmentMessages:
    """One segment's messages in one process: its body rendered once, a template per format,
    its papers' cards encoded once; each reader's message is assembled from them."""

    def __init__(self, settings: Settings, body: RenderedBody, date: datetime) -> None:
        self.settings = settings
        self.subject, self.fit = body.subject, body.fit
        self.frame: Frame = body.frame  # the whole parts are not kept: the frame makes them
        self._date = date
        self._templates: dict[MailFormat, MessageTemplate] = {}
        self._cards: dict[tuple[int, int, bool, str], list[bytes | str]] = {}
        self._positions = {
            paper.arxiv_id: (section, index)
            for section, pool in enumerate(self.frame.pools)
            for index, paper in enumerate(pool)
        }

    def body(self) -> RenderedBody:
        """The segment's body, newest first (for the rare message composed whole)."""
        html_part, text_part = self.frame.bodies()
        return RenderedBody(self.subject, html_part, text_part, self.fit, self.frame)

    def template(self, mail_format: MailFormat) -> MessageTemplate:
        """The segment's message in this format (plain text alone: the same text part)."""
        template = self._templates.get(mail_format)
        if template is None:
            settings = self.settings
            template = self._templates[mail_format] = MessageTemplate.build(
                sender=settings.from_address,
                subject=self.subject,
                html_body=self.frame.html if mail_format == MailFormat.html else None,
                text_body=self.frame.text,
                list_id=settings.list_id,
                body_fields=BODY_FIELDS,
                date=self._date,
            )
        return template

    def orders(self, ranking: list[str] | None) -> list[list[int]] | None:
        """Each section's papers (indices into its pool) in a reader's order: those they
        ranked, best first, then the others newest first; None for newest first."""
        if not ranking:
            return None
        pools = self.frame.pools
        orders: list[list[int]] = [[] for _ in pools]
        positions = self._positions
        for arxiv_id in ranking:
            found = positions.get(arxiv_id)
            if found is not None:
                orders[found[0]].append(found[1])
        for order, pool in zip(orders, pools, strict=True):
            if len(order) < len(pool):
                ranked = set(order)
                order.extend(index for index in range(len(pool)) if index not in ranked)
        return orders

    def slots(self, orders: list[list[int]] | None, paper_url) -> Callable[[int, str], bytes]:
        """A reader's papers for `MessageTemplate.bytes_for`: the card of each slot, with
        `paper_url(arxiv_id)` for its actions (made once per paper and message)."""
        slots = self.frame.slots
        urls: dict[str, bytes] = {}

        def url(arxiv_id: str) -> bytes:
            data = urls.get(arxiv_id)
            if data is None:
                data = urls[arxiv_id] = encoded(html.escape(paper_url(arxiv_id)))
            return data

        def slot_bytes(number: int, context: str) -> bytes:
            slot = slots[number]
            index = orders[slot.section][slot.index] if orders else slot.index
            pieces = self._card(slot.section, index, slot.line, context)
            return b"".join([piece if type(piece) is bytes else url(piece) for piece in pieces])

        return slot_bytes

    def _card(self, section: int, index: int, line: bool, context: str) -> list[bytes | str]:
        """A paper's card encoded for `context` ("html" or "text"): bytes, and the arXiv id
        where the reader's link goes. The segment keeps a reference; the encoded card itself
        is the process's, shared by every segment that shows it."""
        key = (section, index, line, context)
        pieces = self._cards.get(key)
        if pieces is None:
            if not self._cards:
                self._make_cards()
            card = self.frame.card(section, index, line, html=context == "html")
            pieces = self._cards[key] = _encoded_card(card, context)
        return pieces

    def _make_cards(self) -> None:
        """Make every card the segment's readers may be shown at once (one MJML document for
        those the process lacks), rather than one by one as their orders ask for them."""
        kinds = {(slot.section, slot.line) for slot in self.frame.slots}
        keys = [
            self.frame.card(section, index, line, html=True)
            for section, line in kinds
            for index in range(len(self.frame.pools[section]))
        ]
        PAPER_CARDS.get(keys)


ENCODED_LIMIT = 8192
"""Encoded cards a process keeps (a few KB each), shared by its segments."""
_ENCODED: dict[tuple[tuple, str], list[bytes | str]] = {}


def _encoded_card(card: tuple, context: str) -> list[bytes | str]:
    """A card as quoted-printable pieces, with the arXiv id where the reader's link goes."""
    global _ENCODED
    pieces = _ENCODED.get((card, context))
    if pieces is None:
        text = PAPER_CARDS.get([card])[0][0] if context == "html" else text_piece(card)
        parts = PAPER_PLACEHOLDER.split(text)  # text, arXiv id, text, ..., text
        pieces = [encoded(part) if number % 2 == 0 else part for number, part in enumerate(parts)]
        pieces = [piece for piece in pieces if piece != b""]
        if len(_ENCODED) >= ENCODED_LIMIT:
            _ENCODED = {}  # replaced, never emptied in place: a reader keeps what it read
        _ENCODED[(card, context)] = pieces
    return pieces
