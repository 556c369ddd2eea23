"""Messages built once per segment and personalised by substitution read exactly like ones
composed for each recipient."""

from __future__ import annotations

import binascii
import email
import html
import random
import re
from datetime import UTC, datetime
from email import policy

import pytest

from newsletter.errors import InvalidInput
from newsletter.message import mail_merge
from newsletter.message.compose import compose, message_bytes
from newsletter.message.mail_merge import MessageTemplate

LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit — ünïcödé 中文 русский "
HTML = (
    "<html><body>" + f"<p style='color:#333'>{LONG * 30}</p>"
    "<a href=\"__U__\">Unsubscribe</a> · <a href='__W__'>View in browser</a>"
    " trailing space before a placeholder: __W__ </body></html>\n"
)
TEXT = f"Hello\n\n{LONG * 20}\nUnsubscribe: __U__\nWeb: __W__\n   indented __U__ twice __U__"
FIELDS = {"unsubscribe_url": "__U__", "web_url": "__W__"}
COMMON = dict(
    sender="arXiv Digest <digest@example.org>",
    subject="arXiv digest 2026-11-27: 3 new papers in SLAM",
    list_id="arXiv Digest <digest.example.org>",
)

RECIPIENTS = [
    {
        "to": "ada@example.org",
        "message_id": "<0123456789abcdef@example.org>",
        "unsubscribe_url": "https://digest.example.org/unsubscribe/eyJhIjoxfQ.abc_DEF-123",
        "unsubscribe_mailto": "mailto:digest@example.org?subject=unsubscribe%20eyJhIjoxfQ.abc",
        "web_url": "https://digest.example.org/digests/2026-11-27/for/tok",
    },
    {
        "to": "Bo Zhang <bo@example.net>",
        "message_id": "<fedcba9876543210@example.org>",
        # Longer than a quoted-printable line, with characters that must be encoded.
        "unsubscribe_url": "https://digest.example.org/unsubscribe/" + "x" * 120 + "?a=1&b=2",
        "unsubscribe_mailto": "mailto:digest@example.org?subject=unsubscribe%20" + "y" * 120,
        "web_url": "https://digest.example.org/digests/2026-11-27/for/" + "=" * 3,
    },
]


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=policy.strict)


def normal(text: str) -> str:
    return text.replace("\r\n", "\n")


@pytest.fixture(scope="module")
def template() -> MessageTemplate:
    return MessageTemplate.build(html_body=HTML, text_body=TEXT, body_fields=FIELDS, **COMMON)


@pytest.mark.parametrize("values", RECIPIENTS, ids=["short", "long"])
def test_substituted_message_equals_a_composed_one(template, values):
    ours = parsed(template.bytes_for(values))
    escaped = {k: v.replace("&", "&amp;") for k, v in values.items()}
    reference = compose(
        to=values["to"],
        html=HTML.replace("__U__", escaped["unsubscribe_url"]).replace("__W__", escaped["web_url"]),
        text=TEXT.replace("__U__", values["unsubscribe_url"]).replace("__W__", values["web_url"]),
        message_id=values["message_id"],
        unsubscribe_url=values["unsubscribe_url"],
        unsubscribe_mailto=values["unsubscribe_mailto"],
        **COMMON,
    )
    for kind in ("plain", "html"):
        assert normal(ours.get_body((kind,)).get_content()) == normal(
            reference.get_body((kind,)).get_content()
        )
    for header in ("From", "To", "Subject", "Message-ID", "List-Id", "List-Unsubscribe-Post"):
        assert ours[header] == reference[header], header
    assert (
        ours["List-Unsubscribe"]
        == f"<{values['unsubscribe_url']}>, <{values['unsubscribe_mailto']}>"
    )
    assert [p.get_content_type() for p in ours.iter_parts()] == ["text/plain", "text/html"]


def test_every_line_stays_short(template):
    data = template.bytes_for(RECIPIENTS[1])
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF everywhere, no bare LF


def test_recipients_never_see_each_others_values(template):
    first, second = (template.bytes_for(values) for values in RECIPIENTS)
    assert b"ada@example.org" not in second and b"bo@example.net" not in first
    assert re.search(rb"Message-ID: <0123456789abcdef@example.org>", first)


def test_header_values_that_could_inject_are_refused(template):
    hostile = dict(RECIPIENTS[0], to="ada@example.org\r\nBcc: everyone@example.org")
    with pytest.raises(InvalidInput, match="not usable in a header"):
        template.bytes_for(hostile)


def test_templates_of_one_date_share_their_headers_but_not_their_subjects():
    when = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    subjects = [
        "arXiv digest 2026-11-27: 2 new papers in SLAM",
        "arXiv digest 2026-11-27: 114 new papers in Visual Localization, Keypoint Detection"
        " and 12 more",
        "Neue Arbeiten: Überblick — 中文",
    ]
    templates = [
        MessageTemplate.build(
            html_body=HTML, text_body=TEXT, body_fields=FIELDS, date=when, **dict(COMMON, subject=s)
        )
        for s in subjects
    ]
    for subject, template in zip(subjects, templates, strict=True):
        ours = parsed(template.bytes_for(RECIPIENTS[0]))
        reference = compose(
            to="ada@example.org",
            html="h",
            text="t",
            message_id="<x@example.org>",
            unsubscribe_url="https://digest.example.org/u",
            unsubscribe_mailto="mailto:digest@example.org",
            date=when,
            **dict(COMMON, subject=subject),
        )
        assert ours["Subject"] == reference["Subject"] == subject
        assert ours["Date"] == "Fri, 27 Nov 2026 06:00:00 +0000"
        raw_subject = template.bytes_for(RECIPIENTS[0]).split(b"\r\nDate:")[0].split(b"Subject:")[1]
        assert raw_subject == message_bytes(reference).split(b"\r\nDate:")[0].split(b"Subject:")[1]


@pytest.mark.parametrize(
    "alphabet",
    [
        "abcdefghijklmnopqrstuvwxyz0123456789-_./:?",  # links and tokens: the fast path
        "abc =&<>\"'é中\t",  # what needs escaping, spaces that may end a line
    ],
    ids=["plain", "escaped"],
)
def test_encoded_values_of_every_length_decode_exactly_and_keep_lines_short(alphabet):
    rng = random.Random(5)
    for length in range(1, 320):
        text = "".join(rng.choice(alphabet) for _ in range(length))
        for context in ("text", "html"):
            encoded = mail_merge._encode(text, context)
            assert encoded.endswith(mail_merge.SOFT_BREAK)
            assert all(len(line) <= 76 for line in encoded.split(b"\r\n")), (length, encoded)
            decoded = binascii.a2b_qp(encoded).decode()
            assert decoded == (html.escape(text) if context == "html" else text)


def test_a_plain_text_template_is_the_text_part_alone():
    plain = MessageTemplate.build(html_body=None, text_body=TEXT, body_fields=FIELDS, **COMMON)
    values = RECIPIENTS[1]
    ours = parsed(plain.bytes_for(values))
    reference = compose(
        to=values["to"],
        html=None,
        text=TEXT.replace("__U__", values["unsubscribe_url"]).replace("__W__", values["web_url"]),
        message_id=values["message_id"],
        unsubscribe_url=values["unsubscribe_url"],
        unsubscribe_mailto=values["unsubscribe_mailto"],
        **COMMON,
    )
    assert ours.get_content_type() == reference.get_content_type() == "text/plain"
    assert normal(ours.get_content()) == normal(reference.get_content())
    for header in ("To", "Subject", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert ours[header] == reference[header], header


DOTTED_TEXT = ".hidden line\n..two dots\n.\nUnsubscribe: __U__\n" + "a" * 74 + ".b __W__\n."
DOTTED_HTML = "<p>x</p>\n." + "c" * 73 + ".\n<a href='__U__'>__W__</a>\n.end"
DOTTED_VALUES = {
    **RECIPIENTS[0],
    # A link whose quoted-printable lines start with a "." (soft breaks every 75 characters).
    "unsubscribe_url": "https://digest.example.org/u/" + "t" * 46 + "." + "x" * 74 + ".y",
    "web_url": ".starts-with-a-dot",
}


@pytest.mark.parametrize("html_body", [DOTTED_HTML, HTML, None], ids=["dots", "plain", "text"])
@pytest.mark.parametrize("values", [DOTTED_VALUES, *RECIPIENTS], ids=["dots", "short", "long"])
def test_the_wire_bytes_are_the_message_dot_stuffed_whole(html_body, values):
    """`wire_for` stuffs the fixed pieces once and the values as they come: the same bytes as
    stuffing the whole message (RFC 5321 4.5.2), the final dot included."""
    from newsletter.delivery.outgoing import dot_stuffed

    template = MessageTemplate.build(
        html_body=html_body, text_body=DOTTED_TEXT, body_fields=FIELDS, **COMMON
    )
    data = template.bytes_for(values)
    assert template.wire_for(values) == dot_stuffed(data)
    assert re.search(rb"\n\.", data)  # there was something to stuff
