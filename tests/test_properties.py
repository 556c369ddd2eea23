"""Property tests: whatever text a paper or a subscriber carries, every output holds.

Hypothesis writes LaTeX-like, Unicode, HTML and Markdown strings into every text field of a
paper (title, abstract, authors, comment, links) and into a subscriber's address. Each goes
through the readable_* helpers, the email (HTML and text parts, as the MIME a subscriber
gets, whatever address email-validator let in), the web version, the Atom feed and both
exports. Nothing may raise; every output must parse (HTML with lxml's strict parser, XML,
MIME under `email.policy.strict`, Markdown by markdown-it); no link may have a scheme other
than http(s) or mailto, and no raw HTML may come out of the Markdown.

Examples Hypothesis found failing before the fixes are kept as plain tests at the end
(`FOUND`), so they run every time whatever Hypothesis draws. `NEWSLETTER_TEST_EXAMPLES`
scales the number of examples (default 1: the counts written below).
"""

from __future__ import annotations

import email
import json
import os
import re
from datetime import UTC, date, datetime
from email import policy
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree
from markdown_it import MarkdownIt

from newsletter.digest.content import DigestContent, TopicSection, paper_item
from newsletter.errors import InvalidInput
from newsletter.intake.subscribers import normalise_email
from newsletter.message.addresses import smtp_address
from newsletter.message.compose import compose, message_bytes
from newsletter.message.mail_merge import MessageTemplate
from newsletter.models import Paper
from newsletter.publish import export, feeds
from newsletter.render.email import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    WEB_VERSION_PLACEHOLDER,
    RenderedBody,
    personalise,
    render_email,
)
from newsletter.render.pages import render_web_digest
from newsletter.sources.codelinks import find_code_links
from newsletter.textfmt import authors_line, readable_paragraphs, readable_title, shorten

SCALE = float(os.environ.get("NEWSLETTER_TEST_EXAMPLES", "1"))


def examples(count: int):
    """Hypothesis settings for `count` examples (times NEWSLETTER_TEST_EXAMPLES)."""
    return settings(
        max_examples=max(1, int(count * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------- what a field can hold

PIECES = [
    # LaTeX, as authors type it and as it breaks converters
    "\\", "{", "}", "$", "$$", "^", "_", "^{", "_{", "\\href{", "\\url{", "}{", "\\verb",
    "|", "+", "\\begin{", "\\end{", "itemize", "%", "&", "#", "~", "--", "---", "``", "''",
    "\\emph{", "\\frac{", "\\'", '\\"', "\\alpha", "\\mathcal{", "\\cite{", "\\\\", "\\(",
    "\\)", "\\[", "\\]", "\\textbf", "\\_", "\\%",
    # links, good and bad
    "https://x.org/a_b", "http://[::1", "github.com/", "hf.co/spaces/", "http://", "https://",
    "javascript:alert(1)", "JaVaScRiPt:x",
    "data:text/html,<b>", "vbscript:x", " https://github.com/a/b ", "www.x.org",
    # HTML, MJML and XML
    "<script>alert(1)</script>", "</mj-text><mj-raw>", "<b>", "<!--", "-->", "]]>", "&amp;",
    "&#0;", "&lt;", "<i class=\"nl-piece-0\"></i>", "__NEWSLETTER_UNSUBSCRIBE_URL__",
    # Markdown
    "[l](javascript:x)", "![i](data:x)", "<https://a.b>", "*", "_", "`", "|", "**", "#",
    # whitespace and the rest of Unicode
    "\n", "\n  ", "\r\n", " ", "\t", "a", "Word", "α", "中文", "مرحبا", "\u202e", "\u200b",
    "\x00", "\x0b", "\x1b", "\x85", "\u2028", "\ufeff", "🚀",
]  # fmt: skip

latex_like = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=40).map(
    "".join
)
any_text = st.one_of(latex_like, st.text(max_size=120))
urls = st.one_of(
    st.sampled_from(
        [
            "https://arxiv.org/abs/2611.00001",
            "javascript:alert(1)",
            " JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "http://[::1",
            "https://x.org/a b|c)d]e",
            "mailto:a@b.c",
            "",
        ]
    ),
    st.text(max_size=30),
    st.text(max_size=20).map(lambda tail: "https://x.org/" + tail),
)

MOMENT = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)


def stored_paper(number: int = 1, **fields: object) -> Paper:
    """A paper as the database holds it; `fields` replace the plain defaults."""
    arxiv_id = f"2611.{number:05d}"
    values: dict = {
        "arxiv_id": arxiv_id,
        "version": 1,
        "title": "A paper",
        "abstract": "We study things.",
        "authors": ["Ada First"],
        "categories": ["cs.CV"],
        "primary_category": "cs.CV",
        "published": MOMENT,
        "updated": MOMENT,
        "comment": None,
        "journal_ref": None,
        "doi": None,
        "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": None,
        "code_urls": [],
    }
    return Paper(**{**values, **fields})


@st.composite
def papers(draw, number: int = 1) -> Paper:
    """A paper with every text field drawn."""
    return stored_paper(
        number,
        title=draw(any_text),
        abstract=draw(any_text),
        authors=draw(st.lists(any_text, max_size=5)),
        primary_category=draw(st.sampled_from(["cs.CV", "<b>x</b>", ""])),
        comment=draw(st.none() | any_text),
        abs_url=draw(urls),
        pdf_url=draw(st.none() | urls),
        code_urls=draw(st.lists(urls, max_size=3)),
    )


paper_lists = st.integers(1, 3).flatmap(
    lambda count: st.tuples(*(papers(number) for number in range(1, count + 1)))
)

LINKS = ("https://d.example.org/u/1", "https://d.example.org/p/1", "https://d.example.org/w/1")
ALLOWED_SCHEMES = {"http", "https", "mailto"}


def content_of(items: tuple[Paper, ...], language: str = "en") -> DigestContent:
    shown = tuple(paper_item(paper) for paper in items)
    section = TopicSection("MLLM", "mllm", "Multimodal <models>", shown, len(shown))
    return DigestContent(
        date=date(2026, 11, 27),
        sections=(section,),
        web_url="https://d.example.org/digests/2026-11-27",
        base_url="https://d.example.org",
        topic_names=("MLLM",),
        language=language,
    )


# ---------------------------------------------------------------- checks on each output


def parsed_html(document: str) -> etree._Element:
    """The document through lxml's HTML parser with error recovery off."""
    return etree.fromstring(document.encode(), etree.HTMLParser(recover=False))


def assert_links_are_safe(root: etree._Element) -> None:
    assert not root.xpath("//script"), "a <script> element came out"
    for attribute in ("href", "src", "action"):
        for value in root.xpath(f"//@{attribute}"):
            scheme = scheme_of(value)
            assert scheme in ALLOWED_SCHEMES or (not scheme and value.startswith(("/", "#"))), (
                attribute,
                value,
            )


def scheme_of(url: str) -> str:
    """The scheme a browser would read (never raises, unlike urlsplit on `http://[::1`)."""
    found = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*):", url)
    return found.group(1).lower() if found else ""


def composed(body: RenderedBody, to: str) -> bytes:
    """A subscriber's message composed whole, as the Deliverer does for an address its
    templates cannot carry (a non-ASCII local part)."""
    return message_bytes(
        compose(
            sender="Digest <digest@example.org>",
            to=to,
            subject=body.subject,
            html=body.html,
            text=body.text,
            message_id="<1@example.org>",
            list_id="Digest <digest.example.org>",
            unsubscribe_url=LINKS[0],
            unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
        )
    )


def mime(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=policy.strict)
    for part in message.walk():
        if not part.is_multipart():
            part.get_content()  # decodes under the strict policy: raises on a defect
    return message


# ---------------------------------------------------------------- the properties


@examples(600)
@given(text=any_text)
def test_readable_text_never_raises(text):
    assert isinstance(readable_title(text), str)
    assert all("\n" not in paragraph for paragraph in readable_paragraphs(text))
    assert isinstance(shorten(text, 40), str)
    assert isinstance(authors_line([text, text, text, text]), str)


@examples(600)
@given(abstract=any_text, comment=st.none() | any_text)
def test_code_links_are_found_in_any_text_and_are_http(abstract, comment):
    # Run on every fetched paper's abstract and comment, before anything is stored.
    for url in find_code_links(abstract, comment):
        assert scheme_of(url) in {"http", "https"}, url


@examples(120)
@given(items=paper_lists, language=st.sampled_from(["en", "zh", "ar"]))
def test_papers_go_through_the_email_and_the_web_page(items, language):
    content = content_of(items, language)
    body = personalise(render_email(content, sender_name="Digest"), *LINKS)
    page = render_web_digest(content, site_name="Digest")

    assert_links_are_safe(parsed_html(body.html))
    assert_links_are_safe(parsed_html(page))
    for scheme in ("javascript:", "data:", "vbscript:"):
        assert f'href="{scheme}' not in body.html.lower()
    parsed = mime(composed(body, "ada@example.org"))
    sent_html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert sent_html.rstrip("\n") == body.html.rstrip("\n")


@examples(200)
@given(items=paper_lists)
def test_papers_go_through_the_feed_and_both_exports(items):
    entries = tuple(
        feeds.feed_entry(paper, "https://d.example.org/digests/2026-11-27", ["MLLM", "<x>"])
        for paper in items
    )
    feed = feeds.Feed(
        id="https://d.example.org/feed.xml",
        title="Digest",
        subtitle="",
        self_url="https://d.example.org/feed.xml",
        archive_url="https://d.example.org/digests/",
        author="Digest",
        updated=MOMENT,
        entries=entries,
    )
    root = etree.fromstring(feeds.atom_xml(feed))  # strict XML
    for href in root.xpath("//*[local-name()='link']/@href"):
        assert scheme_of(href) in {"http", "https"}, href

    exported = export.Export(
        updated=date(2026, 11, 27),
        language="en",
        topics=(
            export.ExportedTopic(
                name="MLLM [x](javascript:y)",
                anchor="mllm",
                description="<b>models</b>",
                papers=tuple(export.exported_paper(paper, None) for paper in items),
            ),
        ),
    )
    tokens = MarkdownIt("commonmark").enable("table").parse(export.to_markdown(exported))
    for token in tokens:
        for child in [token, *(token.children or [])]:
            ours = child.type == "html_inline" and child.content == "<br>"  # paragraphs in a cell
            assert ours or child.type not in ("html_inline", "html_block"), child.content
            if child.type in ("link_open", "image"):
                target = child.attrs.get("href") or child.attrs.get("src")
                internal = target == "#mllm"  # the topic's own heading
                assert internal or scheme_of(str(target)) in {"http", "https"}, target
    data = json.loads(export.to_json(exported))
    for paper in data["topics"][0]["papers"]:
        for url in [paper["abs_url"], paper["pdf_url"], paper["code_url"], *paper["code_urls"]]:
            assert url is None or scheme_of(url) in {"http", "https"}, url


addresses = st.one_of(
    st.emails(),
    st.builds(
        "{}@{}".format,
        st.text(min_size=1, max_size=12),
        st.sampled_from(["example.org", "bücher.example", "例子.广告", "xn--bcher-kva.example"]),
    ),
)


@lru_cache(maxsize=1)
def one_digest() -> tuple[RenderedBody, MessageTemplate]:
    """A digest's body and its message template, as every subscriber of a segment gets."""
    item = stored_paper(
        title="PanGu-$π$: <b>Hostile</b> [x](javascript:y)",
        abstract="We study \\href{https://github.com/a/b}{code}.",
    )
    body = render_email(content_of((item,)), sender_name="Digest")
    template = MessageTemplate.build(
        sender="Digest <digest@example.org>",
        subject=body.subject,
        html_body=body.html,
        text_body=body.text,
        list_id="Digest <digest.example.org>",
        body_fields={
            "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
            "preferences_url": PREFERENCES_PLACEHOLDER,
            "web_version_url": WEB_VERSION_PLACEHOLDER,
        },
    )
    return body, template


@examples(300)
@given(address=addresses)
def test_a_subscriber_s_message_parses_whatever_their_address(address):
    try:
        normalised = normalise_email(address)
    except InvalidInput:
        assume(False)  # what the CLI, the CSV import and the web form refuse never gets here
    recipient = smtp_address(normalised)
    body, template = one_digest()
    links = dict(zip(("unsubscribe_url", "preferences_url", "web_version_url"), LINKS, strict=True))
    if recipient.isascii():  # the Deliverer's fast path: substitution in the template
        data = template.bytes_for(
            {
                "to": recipient,
                "message_id": "<1@example.org>",
                "unsubscribe_mailto": "mailto:digest@example.org",
                **links,
            }
        )
    else:  # the slow path: composed whole, UTF-8 headers (RFC 6532)
        data = composed(personalise(body, *LINKS), normalised)
    message = mime(data)
    assert str(message["To"]) == recipient
    assert LINKS[0] in message.get_body(("plain",)).get_content()


# ---------------------------------------------------------------- what Hypothesis found

FOUND = [
    r"see \href{https://github.com/a/b}{here}",  # IndexError in pylatexenc
    r"\verb|x|",  # IndexError
    r"$\verb|x|$",
    r"\href",
    "\\'",  # an accent with nothing to put it on
    r"\frac{",
    "$\\\\$",
]
"""Paper texts that raised (IndexError, KeyError) before, or broke a page: each goes through
every output, always."""


@pytest.mark.parametrize("text", FOUND)
def test_texts_that_once_broke_the_digest(text):
    item = stored_paper(
        title=text,
        abstract=text,
        authors=[text],
        comment=text,
        abs_url=text,
        pdf_url=text,
        code_urls=[text],
    )
    content = content_of((item,))
    body = personalise(render_email(content, sender_name="D"), *LINKS)
    assert_links_are_safe(parsed_html(body.html))
    assert_links_are_safe(parsed_html(render_web_digest(content, site_name="D")))
    assert export.exported_paper(item, None).title
