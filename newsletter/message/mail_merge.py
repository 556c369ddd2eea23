"""A mail merge: a message encoded once for a whole segment (`MessageTemplate`); each
recipient's bytes by substitution.

MIME-encoding a 90 KB digest costs far more than everything else a message needs, and every
member of a segment gets the same body but for a few values: the recipient, the Message-ID
and their own links. So the message is encoded once, with markers where those values go,
and cut into pieces; a recipient's message is the pieces joined with their values encoded
for each place (raw in a header, quoted-printable and HTML-escaped in the HTML part,
quoted-printable in the text part).

Quoted-printable allows a soft line break ("=" at the end of a line) anywhere: every piece
ends with one, so a value always starts a fresh line and no marker or value is ever split by
the encoder's 76-column wrapping. A decoder joins the lines back exactly.
"""

from __future__ import annotations

import binascii
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from newsletter.errors import InvalidInput
from newsletter.message.compose import compose, message_bytes, subject_header
from newsletter.render.cards import CARD_MARKER as SLOT_MARKER

# Header markers: what compose() is given instead of the recipient's values.
TO = "nl-recipient@marker.invalid"
MESSAGE_ID = "<nl-message-id@marker.invalid>"
HEADER_UNSUBSCRIBE = "https://marker.invalid/nl-unsubscribe"
HEADER_UNSUBSCRIBE_MAILTO = "mailto:nl-unsubscribe@marker.invalid"

SUBJECT = "nl-subject-marker"
_SUBJECT_LINE = f"Subject: {SUBJECT}\r\n".encode()

# Body markers: one line each, so the encoder leaves them whole.
TEXT_BODY = "nl-text-body-marker"
HTML_BODY = "nl-html-body-marker"

SOFT_BREAK = b"=\r\n"
MAX_LINE = 76
"""Characters a quoted-printable line may have (RFC 2045), its soft break's "=" included."""
_QP_PLAIN = re.compile(rb"[!-<>-~]+")
"""Bytes quoted-printable writes as they are: printable ASCII but "=" (and no spaces, which
would need care at a line's end)."""
_HTML_SPECIAL = re.compile(r"[&<>\"']")
_UNSAFE_HEADER_VALUE = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True)
class _Field:
    name: str
    context: str  # "header", "text" or "html"


@dataclass(frozen=True)
class _Slot:
    """Where a paper goes in a body: filled per recipient (their papers in their order)."""

    number: int
    context: str  # "text" or "html"


Slots = tuple[Sequence[bytes], Sequence[bytes]]
"""A recipient's papers for the slots of the HTML part and of the text part, encoded."""


class MessageTemplate:
    """A segment's message, MIME-encoded once with a gap for each recipient's value.

    Build with `build(...)`; `bytes_for(values)` gives one recipient's message.
    """

    def __init__(self, pieces: list[bytes | _Field | _Slot]) -> None:
        self.pieces = pieces
        # For `bytes_for`: the static pieces with a gap per field, and which value fills each
        # gap (a link recurs: it is encoded once per context, not once per place).
        self._fields = list(dict.fromkeys(p for p in pieces if isinstance(p, _Field)))
        self._static = [piece if isinstance(piece, bytes) else b"" for piece in pieces]
        self._wire_static = [stuffed_inside(piece) for piece in self._static]
        if not self._static[-1].endswith(b"\r\n"):  # what the final dot of `wire_for` needs
            raise InvalidInput("the message template does not end its last line")
        self._gaps = [
            (position, self._fields.index(piece))
            for position, piece in enumerate(pieces)
            if isinstance(piece, _Field)
        ]
        self._slots = [
            (position, piece.number, piece.context)
            for position, piece in enumerate(pieces)
            if isinstance(piece, _Slot)
        ]

    @classmethod
    def build(
        cls,
        *,
        sender: str,
        subject: str,
        html_body: str | None,
        text_body: str,
        list_id: str,
        body_fields: Mapping[str, str],
        date: datetime | None = None,
    ) -> MessageTemplate:
        """`body_fields` maps a field name to the placeholder standing for it in the bodies;
        `html_body` None makes a plain-text message.

        With a `date`, the headers common to all templates (all but the Subject) are composed
        once for every template of that date and sender, not once per template.
        """
        if date is None:
            skeleton = _skeleton(sender, list_id, None, html_body is not None)
        else:
            skeleton = _shared_skeleton(sender, list_id, date, html_body is not None)
        skeleton = skeleton.replace(_SUBJECT_LINE, subject_header(subject), 1)
        header_fields = {
            TO.encode(): _Field("to", "header"),
            MESSAGE_ID.encode(): _Field("message_id", "header"),
            HEADER_UNSUBSCRIBE.encode(): _Field("unsubscribe_url", "header"),
            HEADER_UNSUBSCRIBE_MAILTO.encode(): _Field("unsubscribe_mailto", "header"),
        }
        bodies = {TEXT_BODY.encode(): _encoded_body(text_body, body_fields, "text")}
        if html_body is not None:
            bodies[HTML_BODY.encode()] = _encoded_body(html_body, body_fields, "html")
        return cls(_cut(skeleton, header_fields, bodies))

    def bytes_for(
        self,
        values: Mapping[str, str],
        html_slots: Sequence[bytes] = (),
        text_slots: Sequence[bytes] = (),
    ) -> bytes:
        """One recipient's message; `values` has "to", "message_id", "unsubscribe_url",
        "unsubscribe_mailto" and every body field; `html_slots` and `text_slots` are their
        papers for the slots of each part (`SLOT_MARKER`), encoded (see `encoded`)."""
        return b"".join(self._filled(values, html_slots, text_slots, self._static, _qp))

    def wire_for(self, values: Mapping[str, str], slots: Slots = ((), ())) -> bytes:
        """`bytes_for`'s message as SMTP's DATA sends it: dot-stuffed, ending in the final dot
        (what `delivery.outgoing.dot_stuffed` makes of it), without a pass over its bytes;
        `slots` are the HTML and the text slots.

        The fixed pieces were stuffed once, when the template was made; a recipient's values
        are stuffed as they are encoded, and the slots must come stuffed (`stuffed_inside`).
        Stuffing inside each piece leaves only a "." that starts a piece right after a line
        end: that one is doubled here, as the pieces are joined.
        """
        pieces = self._filled(values, *slots, self._wire_static, _stuffed_qp)
        joined = []
        add = joined.append
        line_start = True  # the message's first byte starts a line
        for piece in pieces:
            if piece:
                if line_start and piece[0] == _DOT:
                    add(b".")
                add(piece)
                line_start = piece[-1] == _LF
        add(_FINAL_DOT)
        return b"".join(joined)

    def _filled(
        self,
        values: Mapping[str, str],
        html_slots: Sequence[bytes],
        text_slots: Sequence[bytes],
        static: list[bytes],
        qp,
    ) -> list[bytes]:
        encoded = []
        plain: dict[str, bytes] = {}  # a value the two parts encode alike (a link): once
        for field in self._fields:
            value = values[field.name]
            if field.context == "header":
                encoded.append(_encode(value, "header"))  # one line: nothing to stuff
            elif field.context == "html" and _HTML_SPECIAL.search(value):
                encoded.append(qp(html.escape(value)))
            else:
                data = plain.get(value)
                if data is None:
                    data = plain[value] = qp(value)
                encoded.append(data)
        out = static.copy()
        for position, field in self._gaps:
            out[position] = encoded[field]
        for position, number, context in self._slots:
            out[position] = (html_slots if context == "html" else text_slots)[number]
        return out


_DOT, _LF = ord("."), ord("\n")
_FINAL_DOT = b".\r\n"


def stuffed_inside(piece: bytes) -> bytes:
    """A piece of a message with every "." that starts a line inside it doubled (RFC 5321
    4.5.2); one at its very start is the joiner's to double (`MessageTemplate.wire_for`)."""
    return piece.replace(b"\n.", b"\n..")


def _stuffed_qp(text: str) -> bytes:
    return stuffed_inside(_qp(text))


def _skeleton(sender: str, list_id: str, date: datetime | None, with_html: bool) -> bytes:
    """The message with markers for everything per recipient and per segment."""
    message = compose(
        sender=sender,
        to=TO,
        subject=SUBJECT,
        html=HTML_BODY if with_html else None,
        text=TEXT_BODY,
        message_id=MESSAGE_ID,
        list_id=list_id,
        unsubscribe_url=HEADER_UNSUBSCRIBE,
        unsubscribe_mailto=HEADER_UNSUBSCRIBE_MAILTO,
        date=date,
    )
    skeleton = message_bytes(message)
    if skeleton.count(_SUBJECT_LINE) != 1:
        raise InvalidInput("the message template lost its Subject marker")
    return skeleton


_shared_skeleton = lru_cache(maxsize=16)(_skeleton)


def _cut(
    skeleton: bytes, header_fields: dict[bytes, _Field], bodies: dict[bytes, list[bytes | _Field]]
) -> list[bytes | _Field]:
    """Split the encoded skeleton at every marker; body markers become their encoded pieces."""
    markers = [*header_fields, *bodies]
    pattern = re.compile(b"|".join(re.escape(m) for m in markers))
    pieces: list[bytes | _Field] = []
    position = 0
    for match in pattern.finditer(skeleton):
        pieces.append(skeleton[position : match.start()])
        marker = match.group(0)
        if marker in header_fields:
            pieces.append(header_fields[marker])
        else:
            pieces.extend(bodies[marker])
        position = match.end()
    pieces.append(skeleton[position:])
    found = {match.group(0) for match in pattern.finditer(skeleton)}
    if found != set(markers):
        raise InvalidInput(f"the message template lost a marker: {set(markers) - found}")
    return [piece for piece in pieces if piece != b""]


def _encoded_body(
    body: str, fields: Mapping[str, str], context: str
) -> list[bytes | _Field | _Slot]:
    """A body as quoted-printable pieces, each ending in a soft break, with its fields and its
    slots (`SLOT_MARKER`) cut out."""
    # The skeleton ends the body's last line itself, as compose() does for any body.
    body = body.removesuffix("\n")
    by_placeholder = {placeholder: name for name, placeholder in fields.items()}
    pattern = re.compile("|".join([*map(re.escape, by_placeholder), SLOT_MARKER.pattern]))
    pieces: list[bytes | _Field | _Slot] = []
    position = 0
    for match in pattern.finditer(body):
        pieces.append(_qp(body[position : match.start()]))
        if match.group(0) in by_placeholder:
            pieces.append(_Field(by_placeholder[match.group(0)], context))
        else:
            pieces.append(_Slot(int(match.group(1)), context))
        position = match.end()
    pieces.append(_qp(body[position:]).removesuffix(SOFT_BREAK))
    return pieces


def encoded(text: str) -> bytes:
    """Text as a piece of a body: quoted-printable ending in a soft break (see `_qp`), so that
    pieces encoded apart join into one body."""
    return _qp(text)


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, ending in a soft break so the next piece starts
    a fresh line (and the pieces decode back to exactly the text)."""
    if not text:
        return b""
    data = text.encode("utf-8")
    if _QP_PLAIN.fullmatch(data):  # a link, an address: nothing to escape, only to wrap
        return _soft_lines(data)
    encoded = binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # b2a_qp lets a last line run to 76 characters; with the soft break added it would be 77.
    head, newline, last = encoded.rpartition(b"\r\n")
    if len(last) > MAX_LINE - 1:
        cut = MAX_LINE - 1
        while b"=" in last[cut - 2 : cut]:  # never inside an "=XX" escape
            cut -= 1
        last = last[:cut] + SOFT_BREAK + last[cut:]
        encoded = head + newline + last
    return encoded + SOFT_BREAK


def _soft_lines(data: bytes) -> bytes:
    """Text that needs no escaping, as quoted-printable lines joined by soft breaks."""
    width = MAX_LINE - 1  # and the "=" of the soft break
    if len(data) <= width:
        return data + SOFT_BREAK
    return SOFT_BREAK.join([data[i : i + width] for i in range(0, len(data), width)]) + SOFT_BREAK


def _encode(value: str, context: str) -> bytes:
    if context == "header":
        if _UNSAFE_HEADER_VALUE.search(value) or not value.isascii():
            raise InvalidInput(f"not usable in a header as is: {value[:80]!r}")
        return value.encode("ascii")
    if context == "html" and _HTML_SPECIAL.search(value):
        value = html.escape(value)
    return _qp(value)
