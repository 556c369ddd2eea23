"""Each claimed row's message: its segment's body rendered once per process, encoded once into a
`MessageTemplate` with a slot where each paper goes, each paper's card encoded once; a reader's
message is the template with their address, Message-ID and links substituted in, and their
papers put in the slots in their own order (their ranking, or newest first), each card with
the reader's own link to its actions (save, more like this, less like this).

Nothing is rendered or encoded per message, and a message's bytes exist only while it is being
sent. Two exceptions are composed whole, the slow way, which knows how: an address with a
non-ASCII local part (its UTF-8 headers), and every message of a list whose base URL has
characters a link cannot carry as it is in HTML and quoted-printable (`PLAIN_LINK`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.delivery.outgoing import Outgoing
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import SegmentKey
from newsletter.errors import RenderError
from newsletter.message.addresses import smtp_address
from newsletter.message.compose import compose, mailto_for, message_bytes
from newsletter.message.mail_merge import (
    MAX_LINE,
    SOFT_BREAK,
    MessageTemplate,
    encoded,
    stuffed_inside,
)
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
from newsletter.tokens import DigestLinks, paper_link

PLAIN_LINK = re.compile(r"[!#-%(-;?-~]+")
"""Characters a link may have to be written as it is in both parts: printable ASCII but what
HTML escapes (& < > " ') and "=", which quoted-printable escapes. Tokens are URL-safe base64;
a base URL with any other character sends its messages the slow way, which escapes."""

BODY_FIELDS = {
    "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    "preferences_url": PREFERENCES_PLACEHOLDER,
    "web_version_url": WEB_VERSION_PLACEHOLDER,
}
"""The per-subscriber links of a rendered body, by the name `MessageTemplate` fills in."""


SEGMENTS_KEPT = 64
"""Segments whose templates a sender keeps (each about two messages' size, and its cards)."""


class MessageBuilder:
    """One digest's messages, for one sending process; keeps the templates of its segments in
    flight.

    A process keeps one `_SegmentMessages` for each of the SEGMENTS_KEPT segments it sent to
    last (a template per format, about one message's size each, and the segment's encoded
    cards): rows are claimed in the order they were written, segment after segment.
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
        self._plain_links = PLAIN_LINK.fullmatch(f"{settings.base_url}/papers/") is not None
        self._paper_ids: dict[str, bytes] = {}
        """Each paper's end of a card's link (`paper_link`'s), as ASCII bytes."""

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
            path = self.edition.digest.path
            self._links = DigestLinks(settings.base_url, settings.secret(), path)
        self.edition.load_languages(session, {row.language for row in rows})
        subscriber_ids = [row.subscriber_id for row in rows]
        self._followed = self.edition.followed_by(session, subscriber_ids)
        self._rankings = self.edition.rankings(session, subscriber_ids)

    def message(self, row: ClaimedDelivery) -> Outgoing:
        """One subscriber's message: their segment's template with their values substituted
        and their papers in their order (once `prepare` has read what the row needs)."""
        segment = self._segment(self.segment_key(row))
        orders = segment.orders(self._rankings.get(row.subscriber_id))
        unsubscribe, preferences, web_version, papers = self._links.links(row.public_id)
        message_id = row.message_id if row.message_id.startswith("<") else f"<{row.message_id}>"
        mailto = mailto_for(self._sender, unsubscribe.rsplit("/", 1)[1])
        recipient = smtp_address(row.email)  # an internationalised domain in IDNA
        if recipient.isascii() and self._plain_links:
            wire = segment.template(row.format).wire_for(
                {
                    "to": recipient,
                    "message_id": message_id,
                    "unsubscribe_url": unsubscribe,
                    "unsubscribe_mailto": mailto,
                    "preferences_url": preferences,
                    "web_version_url": web_version,
                },
                segment.papers(
                    orders,
                    self._paper_links(papers),
                    row.format == MailFormat.html,
                    wire=True,
                ),
            )
            return Outgoing(row.delivery_id, recipient, self._sender, message_id, wire=wire)
        # A non-ASCII local part (UTF-8 headers) or links that need escaping: composed the slow
        # way, which knows how.
        body = personalise(
            segment.body(),
            unsubscribe,
            preferences,
            web_version,
            lambda arxiv_id: paper_link(papers, arxiv_id),
            orders,
        )
        composed = self._compose(recipient, message_id, (unsubscribe, mailto), body, row.format)
        data = message_bytes(composed)
        return Outgoing(row.delivery_id, recipient, self._sender, message_id, data)

    def segment_key(self, row: ClaimedDelivery) -> SegmentKey:
        """Which body the row's subscriber gets: their topics, language, the authors they
        follow with papers in this digest, and from when their code news counts."""
        followed = self._followed.get(row.subscriber_id, ())
        code_since = self.edition.code_since(row.created_at)
        return (row.topic_ids, row.language, followed, code_since)

    def _paper_links(self, papers: str) -> Callable[[str], bytes]:
        """`paper_link(papers, arxiv_id)` as ASCII bytes: each paper's part is quoted once a
        process, so a reader's card costs a concatenation (their `papers` token is signed once
        a message, by `DigestLinks`)."""
        head = papers.encode()
        ids = self._paper_ids

        def url(arxiv_id: str) -> bytes:
            tail = ids.get(arxiv_id)
            if tail is None:
                tail = ids[arxiv_id] = paper_link("", arxiv_id).encode()  # "/<arXiv id>"
            return head + tail

        return url

    def _segment(self, key: SegmentKey) -> _SegmentMessages:
        """The segment's messages, made on first use. Only the SEGMENTS_KEPT used last are
        kept: rows are claimed segment after segment (in the order their rows were written), so
        a finished segment is seldom met again, and a sender's memory stays flat in the number
        of segments. One met again (a retry) is rendered again, to the same bytes."""
        segments = self._segments
        segment = segments.pop(key, None)
        if segment is not None:
            segments[key] = segment  # the last used, at the end
        else:
            if len(segments) >= SEGMENTS_KEPT:
                del segments[next(iter(segments))]  # the least recently used
            content = self.edition.content(*key)
            body = render_email(
                content,
                sender_name=self.settings.sender_name,
                ranked=self.edition.ranked,
                whole=False,
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
        self._cards: dict[tuple[int, int, bool], EncodedCard] = {}
        self._slots = [(slot.section, slot.index, slot.line) for slot in self.frame.slots]
        self._default: list[EncodedCard] | None = None
        self._need = [0] * len(self.frame.pools)
        """Papers each section shows (its slots)."""
        for slot in self.frame.slots:
            self._need[slot.section] += 1
        self._pools_made = False
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
        """Each section's papers (indices into its pool) in a reader's order, as far as its
        slots go: those they ranked, best first, then the others newest first; None for
        newest first."""
        if not ranking:
            return None
        pools, need, positions = self.frame.pools, self._need, self._positions
        orders: list[list[int]] = [[] for _ in pools]
        left = len(self._slots)
        for arxiv_id in ranking:
            found = positions.get(arxiv_id)
            if found is not None:
                order = orders[found[0]]
                if len(order) < need[found[0]]:
                    order.append(found[1])
                    left -= 1
                    if not left:
                        return orders
        for section, order in enumerate(orders):
            if len(order) < need[section]:
                ranked = set(order)
                order.extend(index for index in range(len(pools[section])) if index not in ranked)
        return orders

    def papers(
        self,
        orders: list[list[int]] | None,
        paper_url: Callable[[str], bytes],
        with_html: bool,
        *,
        wire: bool = False,
    ) -> tuple[list[bytes], list[bytes]]:
        """A reader's papers for `MessageTemplate.bytes_for` (or, with `wire`, dot-stuffed
        for `wire_for`): each slot's card in the HTML part (unless the message has none) and
        in the text part, with the reader's own link to the paper's actions,
        `paper_url(arxiv_id)`, encoded once per paper."""
        html_slots: list[bytes] = []
        text_slots: list[bytes] = []
        html_add, text_add = html_slots.append, text_slots.append
        html_at, text_at = (3, 4) if wire else (0, 1)
        for card in self._slot_cards(orders):
            html_parts, text_parts, arxiv_id = card[html_at], card[text_at], card[2]
            if len(text_parts) == 1:  # a title line: no link of theirs
                if with_html:
                    html_add(html_parts[0])
                text_add(text_parts[0])
                continue
            url = _encoded_url(paper_url(arxiv_id))  # each paper is in one slot only
            if wire:  # a "." after each of its soft breaks doubled; it never starts with one
                url = stuffed_inside(url)
            if with_html:
                html_add(url.join(html_parts))
            text_add(url.join(text_parts))
        return html_slots, text_slots

    def _slot_cards(self, orders: list[list[int]] | None) -> list[EncodedCard]:
        """The card of each slot, the papers in `orders` (None: newest first, kept)."""
        if orders is None:
            if self._default is None:
                self._default = [self._card(*slot) for slot in self._slots]
            return self._default
        if not self._pools_made:  # a reader's order may pick any paper of the pools
            self._make_cards()
            self._pools_made = True
        get = self._cards.get
        return [
            get((section, orders[section][position], line))
            or self._card(section, orders[section][position], line)
            for section, position, line in self._slots
        ]

    def _card(self, section: int, index: int, line: bool) -> EncodedCard:
        """The card of a section's `index`th paper, encoded. The segment keeps a reference;
        the encoded card itself is the process's, shared by every segment that shows it."""
        card = self._cards.get((section, index, line))
        if card is not None:
            return card
        card = self._cards[(section, index, line)] = _encoded_card(
            self.frame.card(section, index, line, html=True),
            self.frame.card(section, index, line, html=False),
        )
        return card

    def _make_cards(self) -> None:
        """Make every card the segment's ranked readers may be shown at once (one MJML document
        for those the process lacks), rather than one by one as their orders ask for them.
        (Newest first needs none: the render made the cards of its step.)"""
        kinds = {(slot.section, slot.line) for slot in self.frame.slots}
        keys = [
            self.frame.card(section, index, line, html=True)
            for section, line in kinds
            for index in range(len(self.frame.pools[section]))
        ]
        PAPER_CARDS.get(keys)


ENCODED_LIMIT = 8192
"""Encoded cards a process keeps (a few KB each), shared by its segments."""
EncodedCard = tuple[tuple[bytes, ...], tuple[bytes, ...], str, tuple[bytes, ...], tuple[bytes, ...]]
"""A paper's card in the HTML part and in the text part, quoted-printable pieces to be joined by
the reader's link, the paper's arXiv id (whose link that is), and the two parts' pieces again
dot-stuffed for `MessageTemplate.wire_for` (`_stuffed_parts`)."""
_ENCODED: dict[tuple[tuple, tuple], EncodedCard] = {}


def _encoded_card(html_card: tuple, text_card: tuple) -> EncodedCard:
    global _ENCODED
    found = _ENCODED.get((html_card, text_card))
    if found is None:
        html_parts = PAPER_PLACEHOLDER.split(PAPER_CARDS.get([html_card])[0][0])
        text_parts = PAPER_PLACEHOLDER.split(text_piece(text_card))
        # text, arXiv id, text, ..., text: the ids are this card's paper's (a title line has
        # none: it links to the paper alone).
        arxiv_id = html_card[1].arxiv_id
        if not set(html_parts[1::2] + text_parts[1::2]) <= {arxiv_id}:
            raise RenderError(f"the card of {arxiv_id} does not link to its own actions")
        html_pieces = tuple(map(encoded, html_parts[::2]))
        text_pieces = tuple(map(encoded, text_parts[::2]))
        found = (
            html_pieces,
            text_pieces,
            arxiv_id,
            _stuffed_parts(html_pieces),
            _stuffed_parts(text_pieces),
        )
        if len(_ENCODED) >= ENCODED_LIMIT:
            _ENCODED = {}  # replaced, never emptied in place: a reader keeps what it read
        _ENCODED[(html_card, text_card)] = found
    return found


def _stuffed_parts(pieces: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A card's pieces dot-stuffed: inside each, and at the start of every piece but the first,
    which follows a reader's link and so a line end (a link's pieces all end in a soft break).
    The first piece's start is the joiner's (`MessageTemplate.wire_for`)."""
    first, *rest = map(stuffed_inside, pieces)
    return (first, *(b"." + piece if piece.startswith(b".") else piece for piece in rest))


def _encoded_url(url: bytes) -> bytes:
    """A reader's link to a paper as a piece of either part (quoted-printable). Nothing in it
    needs escaping: the base URL was checked for that (`MessageBuilder`), tokens are URL-safe
    base64 and `paper_link` percent-encodes an arXiv id's other characters."""
    if len(url) <= _LINE:
        return url + SOFT_BREAK
    if len(url) <= 2 * _LINE:
        return url[:_LINE] + SOFT_BREAK + url[_LINE:] + SOFT_BREAK
    return encoded(url.decode())


_LINE = MAX_LINE - 1
