"""Rendering: readable text, the digest email (HTML and text), web pages."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from lxml import etree
from markupsafe import Markup

from newsletter.digest.content import DigestContent, TopicSection
from newsletter.errors import RenderError
from newsletter.render import cards as render_cards
from newsletter.render.cards import EMAIL_CARD_TEMPLATE, EMAIL_LINE_TEMPLATE, paper_placeholder
from newsletter.render.email import (
    EMAIL_HTML_TEMPLATE,
    EMAIL_TEXT_TEMPLATE,
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    WEB_VERSION_PLACEHOLDER,
    RenderedBody,
    email_context,
    email_html,
    email_subject,
    personalise,
    preheader,
    render_email,
)
from newsletter.render.environment import environment, render_template, static_dir, template_dir
from newsletter.render.fit import FIT_STEPS, Fit
from newsletter.render.inline import inline_css
from newsletter.render.mjml import mjml_to_html
from newsletter.render.pages import (
    DigestListItem,
    render_digest_list,
    render_page,
    render_web_digest,
)
from newsletter.textfmt import authors_line, readable_title
from tests.helpers import (
    ALPHA,
    CONTENT,
    FOUR_AUTHORS,
    HOSTILE,
    HOSTILE_TITLE,
    PANGU,
    WEB_URL,
    readable_abstract,
)


@pytest.fixture(scope="module")
def email() -> RenderedBody:
    return render_email(CONTENT, sender_name="arXiv Digest")


# textfmt


@pytest.mark.parametrize(
    ("source", "readable"),
    [
        ("PanGu-$π$: Enhancing Models", "PanGu-π: Enhancing Models"),
        (r"$\alpha$-Net", "α-Net"),
        ("$L^3$ Loss", "L³ Loss"),
        ("$x_{12}$ and $W_{Q}$", "x₁₂ and W_Q"),
        (r"$\mathcal{O}(n^2)$ time", "𝒪(n²) time"),
        (r"\emph{Sharp} and \textbf{bold}", "Sharp and bold"),
        ('Schr\\"odinger Bridges', "Schrödinger Bridges"),
        ("A  title\n   wrapped by arXiv", "A title wrapped by arXiv"),
        ("R&D <b>not html</b> at 50% cost", "R&D <b>not html</b> at 50% cost"),
        ("It costs $5 and $6", "It costs $5 and $6"),
    ],
)
def test_readable_title(source: str, readable: str) -> None:
    assert readable_title(source) == readable


@pytest.mark.parametrize(
    "unconvertible",
    [
        r"$\foo{x}$-Net",  # unknown macro: pylatexenc would print a bare "x"
        r"$x^{ab}$ scaling",  # no Unicode superscript a, b; "x^ab" would be a new formula
        "$50%$ gain",  # "%" starts a LaTeX comment: the rest would vanish
        r"\unknowncommand{arg} here",
    ],
)
def test_readable_title_keeps_unconvertible_latex_as_source(unconvertible: str) -> None:
    assert readable_title(unconvertible) == unconvertible


def test_readable_abstract_unwraps_lines_and_keeps_paragraphs() -> None:
    assert readable_abstract(PANGU.abstract) == (
        "We study how models learn things that matter for R&D, with 50% fewer parameters."
        "\n\nA second paragraph about L³ losses."
    )


@pytest.mark.parametrize(
    ("authors", "line"),
    [
        (FOUR_AUTHORS, "Ada First, Bo Second, Cy Third et al."),
        (FOUR_AUTHORS[:3], "Ada First, Bo Second, Cy Third"),
        (FOUR_AUTHORS[:2], "Ada First, Bo Second"),
        (("Ada  First\n",), "Ada First"),
        ((), ""),
    ],
)
def test_authors_line(authors: tuple[str, ...], line: str) -> None:
    assert authors_line(authors) == line


def test_authors_line_limit() -> None:
    assert authors_line(FOUR_AUTHORS, limit=1) == "Ada First et al."
    assert authors_line(FOUR_AUTHORS, limit=4) == "Ada First, Bo Second, Cy Third, Di Fourth"


# Templates and the environment


def test_templates_are_found() -> None:
    for name in (
        EMAIL_HTML_TEMPLATE,
        EMAIL_TEXT_TEMPLATE,
        "web/base.html.j2",
    ):
        assert (template_dir() / name).is_file()
    assert (static_dir() / "style.css").is_file()


def test_autoescape_for_html_and_mjml_not_text() -> None:
    autoescape = environment().autoescape
    assert autoescape("email/digest.mjml.j2")
    assert autoescape("web/digest.html.j2")
    assert not autoescape("email/digest.txt.j2")


# Subject


def test_subject_names_date_count_and_topics(email: RenderedBody) -> None:
    assert email.subject == "arXiv digest 2026-11-27: 8 new papers in MLLM, Diffusion"


def test_subject_singular_and_truncated_topics() -> None:
    one = replace(CONTENT, sections=(replace(CONTENT.sections[1], total=1),))
    assert email_subject(one) == "arXiv digest 2026-11-27: 1 new paper in Diffusion"
    sections = tuple(TopicSection(f"Topic {n}", f"topic-{n}", "", (), 2) for n in range(1, 6))
    many = replace(CONTENT, sections=sections)
    assert email_subject(many) == (
        "arXiv digest 2026-11-27: 10 new papers in Topic 1, Topic 2, Topic 3 and 2 more"
    )
    assert email_subject(replace(CONTENT, sections=())) == (
        "arXiv digest 2026-11-27: no new papers"
    )


# The HTML part


def test_html_is_a_complete_document_in_the_digest_language(
    email: RenderedBody,
) -> None:
    assert email.html.startswith("<!doctype html>")
    assert re.search(r'<html[^>]* lang="en"', email.html)
    assert email.html.rstrip().endswith("</html>")
    chinese = render_email(replace(CONTENT, language="zh"), sender_name="Digest")
    assert re.search(r'<html[^>]* lang="zh"', chinese.html)


def test_html_has_each_readable_title_once(email: RenderedBody) -> None:
    # The preheader (hidden, for the inbox) names the first paper too.
    shown = email.html.replace(preheader(CONTENT), "")
    for title in (
        "PanGu-π: Enhancing Language Model Architectures via Nonlinearity Compensation",
        "α-Net: Sharper Diffusion",
    ):
        assert shown.count(title) == 1
    assert "$π$" not in email.html


def test_html_links_abstract_pdf_and_code(email: RenderedBody) -> None:
    for paper in (PANGU, HOSTILE, ALPHA):
        assert f'href="{paper.abs_url}"' in email.html
        assert f'href="{paper.pdf_url}"' in email.html
    assert 'href="https://github.com/example/pangu"' in email.html
    # Only PanGu has code: one Code link in the whole email.
    assert email.html.count(">Code</a>") == 1
    # "View in browser" is the subscriber's own version, filled in by `personalise`.
    assert email.html.count(f'href="{WEB_VERSION_PLACEHOLDER}"') == 2  # top and footer


def test_html_paper_details(email: RenderedBody) -> None:
    assert "Ada First, Bo Second, Cy Third et al." in email.html
    assert "et.al." not in email.html
    assert "2026-11-26" in email.html
    assert "Also in: MLLM" in email.html
    assert "R&amp;D" in email.html and "R&amp;amp;D" not in email.html


def test_html_escapes_hostile_titles(email: RenderedBody) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<script" not in email.html
    assert "&lt;/mj-text&gt;&lt;mj-raw&gt;&lt;b&gt;raw" in email.html
    assert "<b>raw</b>" not in email.html
    assert "mj-raw>" not in email.html.replace("mj-raw&gt;", "")


def test_html_drops_links_that_are_not_http() -> None:
    evil = replace(PANGU, code_url="javascript:alert(1)")
    content = replace(CONTENT, sections=(replace(CONTENT.sections[0], papers=(evil,)),))
    body = render_email(content, sender_name="Digest")
    assert "javascript:" not in body.html and "javascript:" not in body.text
    assert ">Code</a>" not in body.html


def test_links_in_abstracts_are_links_and_only_http_ones() -> None:
    abstract = (
        r"Code \href{https://github.com/a/b}{here}, data at \url{https://x.org/d\_1}."
        r" Not \href{javascript:alert(1)}{this} nor \url{data:text/html,x} nor \verb|v|."
    )
    linked = replace(PANGU, abstract=abstract, code_url=None)
    content = replace(CONTENT, sections=(replace(CONTENT.sections[0], papers=(linked,)),))
    body = render_email(content, sender_name="Digest")
    page = render_web_digest(content, site_name="Digest")

    for html in (body.html, page):
        assert '<a href="https://github.com/a/b"' in html
        assert '<a href="https://x.org/d_1"' in html
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert all(href.startswith(("https://", "http://", "/", "#", "__")) for href in hrefs)
        assert r"\verb|v|" in html and "this nor" in html
    assert "here (https://github.com/a/b)" in body.text and "javascript:" not in body.text


def test_html_keeps_media_rules_and_inlines_styles(email: RenderedBody) -> None:
    styles = re.findall(r"<style[^>]*>(.*?)</style>", email.html, re.DOTALL)
    assert any("@media only screen and (max-width: 479px)" in css for css in styles)
    assert re.search(r'<div class="paper-card[^"]*" style="[^"]*border-top', email.html)
    assert re.search(r'<h3 class="paper-title" style="[^"]*font-size:18px', email.html)


def test_html_has_preheader_contents_and_more_link(email: RenderedBody) -> None:
    assert "8 new papers today: MLLM (7), Diffusion (1)." in email.html
    assert 'href="#mllm"' in email.html and 'id="mllm"' in email.html
    assert f'href="{WEB_URL}#mllm"' in email.html
    assert "5 more papers in MLLM" in email.html
    assert "more papers in Diffusion" not in email.html


def test_empty_digest_renders() -> None:
    body = render_email(replace(CONTENT, sections=()), sender_name="Digest")
    assert "No new papers in your topics today." in body.html
    assert "No new papers in your topics today." in body.text


# Placeholder round trip


def test_unsubscribe_placeholder_survives_mjml_and_inlining(
    email: RenderedBody,
) -> None:
    assert email.html.count(f'href="{UNSUBSCRIBE_PLACEHOLDER}"') == 1
    assert email.text.count(UNSUBSCRIBE_PLACEHOLDER) == 1


def test_personalise_fills_in_the_subscribers_links(email: RenderedBody) -> None:
    url = "https://digest.example.org/unsubscribe?token=a.b&lang=en"
    preferences = "https://digest.example.org/preferences/p.q"
    own = "https://digest.example.org/digests/2026-11-27/for/v.w"
    personal = personalise(email, url, preferences, own)
    placeholders = (
        UNSUBSCRIBE_PLACEHOLDER,
        PREFERENCES_PLACEHOLDER,
        WEB_VERSION_PLACEHOLDER,
    )
    for placeholder in placeholders:
        assert placeholder not in personal.html + personal.text
        assert placeholder in email.html + email.text  # the shared body is untouched
    assert 'href="https://digest.example.org/unsubscribe?token=a.b&amp;lang=en"' in personal.html
    assert f"Unsubscribe: {url}" in personal.text
    assert personal.html.count(f'href="{preferences}"') == 1
    assert f"Preferences: {preferences}" in personal.text
    assert personal.html.count(f'href="{own}"') == 2
    assert f"View in browser: {own}" in personal.text
    assert personal.subject == email.subject


# The text part


def test_text_has_content_and_links(email: RenderedBody) -> None:
    text = email.text
    assert "PanGu-π: Enhancing Language Model Architectures via" in text
    assert "2026-11-26 · Ada First, Bo Second, Cy Third et al." in text
    assert "learn things that matter for R&D" in text
    for paper in (PANGU, HOSTILE, ALPHA):
        assert f"PDF: {paper.pdf_url}" in text
        assert f"Abstract: {paper.abs_url}" in text
    assert text.count("Code: ") == 1 and "Code: https://github.com/example/pangu" in text
    assert HOSTILE_TITLE.split(" R&D")[0] in text  # plain text: nothing to escape
    assert f"5 more papers in MLLM on the web: {WEB_URL}#mllm" in text
    assert f"View in browser: {WEB_VERSION_PLACEHOLDER}" in text
    assert f"Preferences: {PREFERENCES_PLACEHOLDER}" in text
    assert "Also in: MLLM" in text


def test_text_is_wrapped(email: RenderedBody) -> None:
    long_abstract = "Words that go on " * 40
    content = replace(
        CONTENT,
        sections=(replace(CONTENT.sections[0], papers=(replace(PANGU, abstract=long_abstract),)),),
    )
    text = render_email(content, sender_name="Digest").text
    assert all(len(line) <= 76 for line in text.splitlines() if "://" not in line)


# Web pages


def test_web_digest_page() -> None:
    page = render_web_digest(CONTENT, site_name="arXiv Digest")
    assert page.startswith("<!doctype html>") and '<html lang="en"' in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    assert 'id="mllm"' in page and 'id="diffusion"' in page
    assert "PanGu-π: Enhancing Language Model Architectures via Nonlinearity" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert 'href="https://github.com/example/pangu"' in page
    assert page.count(">Code</a>") == 1
    assert "5 more papers in MLLM" in page
    assert "<title>arXiv digest 2026-11-27 · arXiv Digest</title>" in page
    assert " style=" not in page  # the CSP allows no inline styles


def test_digest_list_page() -> None:
    page = render_digest_list(
        [
            (date(2026, 11, 27), 14, "/digests/2026-11-27"),
            DigestListItem(date(2026, 11, 26), 1, "/digests/2026-11-26"),
        ],
        site_name="arXiv Digest",
    )
    assert '<a href="/digests/2026-11-27"><time datetime="2026-11-27">2026-11-27</time></a>' in page
    assert '<td class="numeric">14</td>' in page and '<td class="numeric">1</td>' in page
    assert "No digests yet." in render_digest_list([], site_name="arXiv Digest")


def test_render_page_with_the_base_layout() -> None:
    page = render_page("web/base.html.j2", site_name="A <Digest>", lang="de")
    assert '<html lang="de"' in page
    assert "<title>A &lt;Digest&gt;</title>" in page
    assert '<main id="main"' in page and 'href="#main"' in page
    assert render_page("base.html.j2", site_name="A <Digest>", lang="de") == page


def test_render_page_errors_are_render_errors() -> None:
    with pytest.raises(RenderError):
        render_page("web/no-such-page.html.j2", site_name="x")
    with pytest.raises(RenderError):
        render_page("web/base.html.j2")  # site_name missing


def test_repositories_are_code_and_project_pages_are_projects() -> None:
    page = replace(PANGU, code_url="https://pangu.github.io/demo/")
    content = replace(CONTENT, sections=(replace(CONTENT.sections[0], papers=(page,)),))
    body = render_email(content, sender_name="Digest")
    assert re.search(r'<a href="https://pangu.github.io/demo/"[^>]*>Project</a>', body.html)
    assert ">Code</a>" not in body.html
    assert "Project: https://pangu.github.io/demo/" in body.text
    repo = render_email(
        replace(content, sections=(replace(content.sections[0], papers=(PANGU,)),)),
        sender_name="Digest",
    )
    assert re.search(r'<a href="https://github.com/example/pangu"[^>]*>Code</a>', repo.html)
    assert "Code: https://github.com/example/pangu" in repo.text


# --------------------------------------------------------------------------- CSS inlining


def _pre_inline(content: DigestContent, fit: Fit) -> str:
    """The whole digest through MJML, its papers rendered in place: the document as it would
    be without `render_cards.PAPER_CARDS`."""
    context = email_context(content, "arXiv Digest", fit)

    def in_place(template_name: str):
        return lambda paper: Markup(  # noqa: S704 (an autoescaped template's output)
            render_template(
                template_name,
                {"paper": paper, "lang": content.language, "paper_url": paper_placeholder(paper)},
            )
        )

    context.update(
        paper_card=in_place(EMAIL_CARD_TEMPLATE),
        paper_line=in_place(EMAIL_LINE_TEMPLATE),
    )
    return mjml_to_html(render_template(EMAIL_HTML_TEMPLATE, context))


def _inlined(document: str) -> str:
    """The document with its styles inlined, after its doctype line."""
    return inline_css(document).removeprefix("<!doctype html>\n")


TRANSLATED = replace(
    PANGU,
    arxiv_id="2611.00009",
    title_translated="盘古-π：通过非线性补偿增强语言模型架构",
    abstract_translated="我们研究模型如何学习对研发重要的东西。\n\n第二段：$L^3$ 损失。",
)

NOTED = replace(ALPHA, arxiv_id="2611.00010", translation_note="The translator failed today.")


@pytest.mark.parametrize("language", ["en", "zh", "ar"])
def test_papers_made_once_give_the_document_made_whole(language):
    """`PAPER_CARDS` puts in each paper's HTML made apart from the digest: the result is the
    digest rendered in one piece, at every step of the size ladder."""
    section = TopicSection(
        "Everything", "everything", "All <kinds> of papers", (TRANSLATED, NOTED, PANGU), 9,
        titles_only=(HOSTILE, replace(TRANSLATED, arxiv_id="2611.00011")),
    )  # fmt: skip
    content = replace(CONTENT, language=language, sections=(*CONTENT.sections, section))
    for fit in (
        Fit(),
        FIT_STEPS[2],
        FIT_STEPS[5],
        FIT_STEPS[-3],
    ):
        whole = _inlined(_pre_inline(content, fit))
        made = email_html(content, "arXiv Digest", fit)
        assert made == "<!doctype html>\n" + whole, fit
        assert 'class="nl-piece' not in made
        budget = len(made.encode())
        assert email_html(content, "arXiv Digest", fit, budget) == made
        assert email_html(content, "arXiv Digest", fit, budget - 1) is None


def test_a_paper_shown_in_english_is_made_once_for_every_language():
    render_cards.PAPER_CARDS._made.clear()
    for language in ("en", "de", "zh"):
        email_html(replace(CONTENT, language=language), "Digest", Fit())
    keys = list(render_cards.PAPER_CARDS._made)
    assert len(keys) == 3 and {language for _t, _p, language in keys} == {""}
    translated = replace(CONTENT, sections=(TopicSection("T", "t", "", (TRANSLATED,), 1),))
    for language in ("de", "zh"):
        email_html(replace(translated, language=language), "Digest", Fit())
    assert {
        language for _t, paper, language in render_cards.PAPER_CARDS._made if paper is TRANSLATED
    } == {
        "de",
        "zh",
    }


def test_the_store_of_cards_stays_bounded_and_right(monkeypatch):
    expected = email_html(CONTENT, "Digest", Fit())
    monkeypatch.setattr(render_cards.PaperCards, "LIMIT", 2)
    monkeypatch.setattr(render_cards, "PAPER_CARDS", render_cards.PaperCards())
    for _ in range(2):
        assert email_html(CONTENT, "Digest", Fit()) == expected
        assert len(render_cards.PAPER_CARDS._made) <= 3  # this digest's three papers, never more


HANDMADE = """<!doctype html><html><head>
<style>/* inline */
a { color: #b31b1b; }
p { margin: 0; }
.note { font-size: 12px; color: #6b7280; text-align: right; }
.note a { text-decoration: underline; }
.box p { background-color: #fff; width: 20px; }
td { vertical-align: top; }
</style>
<style media="screen and (max-width: 480px)">.note { font-size: 10px !important; }</style>
<style>.dark { color: #fff; }</style>
</head><body>
<p class=" note  extra " style="color: red">Own style wins <a href="#">link</a></p>
<div class="box"><div><p>deep</p><p class="note">both</p></div></div>
<table><tr><td class="note">cell</td><td style="background-color:#abc">x</td></tr></table>
<a href="#">bare</a><!-- a comment --><p class="dark">not inlined</p>
</body></html>"""


PREMAILER_STYLES = [
    ("p", "margin:0; font-size:12px; color:red; text-align:right"),
    ("a", "color:#b31b1b; text-decoration:underline"),
    ("p", "margin:0; background-color:#fff; width:20px"),
    ("p", "margin:0; font-size:12px; color:#6b7280; text-align:right; background-color:#fff;"
          " width:20px"),
    ("td", "vertical-align:top; font-size:12px; color:#6b7280; text-align:right"),
    ("td", "vertical-align:top; background-color:#abc"),
    ("a", "color:#b31b1b"),
    ("p", "margin:0"),
]  # fmt: skip
"""The `style` premailer wrote on each styled element of HANDMADE's body, kept when css-inline
replaced it: the own style wins, only the marked block is inlined, never a media rule, and a
class is found however the attribute spaces it."""


def _declarations(style: str) -> dict[str, str]:
    pairs = (declaration.partition(":") for declaration in style.split(";"))
    return {name.strip(): value.strip() for name, _, value in pairs if name.strip()}


def _body_styles(document: str) -> list[tuple[str, dict[str, str]]]:
    body = etree.fromstring(document, etree.HTMLParser()).find("body")
    return [
        (element.tag, _declarations(element.get("style")))
        for element in body.iter()
        if isinstance(element.tag, str) and element.get("style")
    ]


def test_the_inliner_gives_each_element_what_premailer_gave_it():
    for document in (HANDMADE, HANDMADE.replace(".box p {", ".box > div > p {")):
        inlined = inline_css(document)
        assert _body_styles(inlined) == [
            (tag, _declarations(style)) for tag, style in PREMAILER_STYLES
        ]
        assert inlined.startswith("<!doctype html>\n")
        # Every <style> block stays (the @media one for phones), and so does the comment.
        assert inlined.count("<style") == 3 and "<!-- a comment -->" in inlined
