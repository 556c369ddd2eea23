"""Text fidelity: LaTeX made readable, entities decoded exactly once, arXiv's wrapping undone,
names intact — from the feed to the email, the web page and the text part."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import html as lxml_html

from newsletter.digest.content import DigestContent, TopicSection
from newsletter.render.email import render_email
from newsletter.render.pages import render_web_digest
from newsletter.sources.arxiv import ArxivSource
from newsletter.textfmt import (
    authors_line,
    readable_paragraphs,
    readable_title,
    shorten,
)
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import make_paper, readable_abstract


@pytest.mark.parametrize(
    ("source", "readable"),
    [
        # The issue's own examples.
        ("$L^3$: Long Context", "L³: Long Context"),
        (r"$\alpha$-Blending", "α-Blending"),
        (r"\emph{x} marks", "x marks"),
        # Real ones, from arXiv's feeds.
        (r"all $0 \le \alpha, \beta\le 1/8$ in", "all 0 ≤ α, β ≤ 1/8 in"),
        (r"the barely sublinear $Θ(n/\log n)$", "the barely sublinear Θ(n/log n)"),
        (r"using $O(n\log(1/\varepsilon))$ queries", "using O(n log(1/ε)) queries"),
        (
            r"the gradient $\nabla f(\mathbf{x})/\|\nabla f(\mathbf{x})\|$",
            "the gradient ∇ f(𝐱)/‖∇ f(𝐱)‖",
        ),
        (r"smooth $f\colon\mathbb R^n\to\mathbb R$", "smooth f: ℝⁿ → ℝ"),
        (r"$\tilde{O}(\varepsilon^{-2})$ queries", "Õ(ε⁻²) queries"),
        (r"show that $M = O(K^2\log{(N/K)}/p^3)$ tests", "show that M = O(K² log(N/K)/p³) tests"),
        (r"the index set of~$X$ and", "the index set of X and"),
        (r"a $7_1$-knot", "a 7₁-knot"),
        (r"We consider the R\'{e}nyi entropy", "We consider the Rényi entropy"),
        (r"derived from K{\"a}hler-Einstein metrics", "derived from Kähler-Einstein metrics"),
        (r"$25\%$ accuracy", "25% accuracy"),
        ("pages 10--20 -- and --- more", "pages 10–20 – and — more"),
        ("``quoted'' words", "“quoted” words"),
        ("~5% and a/~b and https://x.org/~me", "~5% and a/~b and https://x.org/~me"),
    ],
)
def test_latex_becomes_readable_in_titles_and_abstracts(source, readable):
    assert readable_title(source) == readable
    assert readable_abstract(f"Intro.\n  {source}") == f"Intro.\n\n{readable}"


@pytest.mark.parametrize(
    "source",
    [
        r"$\tildeΘ(\sqrt{\log N})$",  # an unknown macro (`\tildeΘ`)
        r"$\text{RGO}_{g,h,y}(x)$",  # a subscript with no Unicode form
        r"$\begin{pmatrix}a\end{pmatrix}$",  # an environment
        r"$a & b$",  # an alignment tab would vanish
        r"\cite{foo} and \ref{fig}",  # unknown text commands
    ],
)
def test_latex_that_cannot_be_made_readable_stays_as_source(source):
    assert readable_title(source) == source


@pytest.mark.parametrize(
    ("source", "readable"),
    [
        # Links are the text and the URL after it; only http(s) URLs are kept.
        (r"Code \href{https://github.com/a/b}{here}.", "Code here (https://github.com/a/b)."),
        (r"\href{https://a.org/x\_y}{https://a.org/x\_y}", "https://a.org/x_y"),
        (r"see \href{javascript:alert(1)}{this}", "see this"),
        (r"\href{ftp://x}{\textbf{bold}}", "bold"),
        (r"at \url{https://x.org/a\_b}", "at https://x.org/a_b"),
        (r"\url{javascript:alert(1)}", r"\url{javascript:alert(1)}"),
        # What pylatexenc raised IndexError or KeyError on stays as written.
        (r"\verb|x| and \verb+y+", r"\verb|x| and \verb+y+"),
        (r"$\verb|x|$", r"$\verb|x|$"),
        (r"\href", r"\href"),
        (r"{unbalanced \emph{x", r"{unbalanced \emph{x"),
        (r"\begin{weird} a \end{weird}", r"\begin{weird} a \end{weird}"),
        ("{" * 400 + "x" + "}" * 400, "{" * 400 + "x" + "}" * 400),
    ],
)
def test_links_and_latex_the_converter_cannot_handle_never_raise(source, readable):
    assert readable_title(source) == readable
    assert readable_paragraphs(source) == [readable]


def test_the_older_format_s_wrapping_is_collapsed_and_paragraphs_kept():
    legacy = (
        "  In this article, we study the Einstein-Weyl structures on almost cosymplectic\n"
        "manifolds. First we prove that an almost cosymplectic $(\\kappa,\\mu)$-manifold\n"
        "is Einstein.\n  Next, a second paragraph\nwrapped too.\n"
    )
    assert readable_paragraphs(legacy) == [
        "In this article, we study the Einstein-Weyl structures on almost cosymplectic"
        " manifolds. First we prove that an almost cosymplectic (κ,μ)-manifold is Einstein.",
        "Next, a second paragraph wrapped too.",
    ]
    current = "First paragraph, one line.\n  Second paragraph.\n\nThird, after a blank line."
    assert len(readable_paragraphs(current)) == 3


def real_papers(relpath: str, count: int):
    with ArxivServer(default=Reply.file(shared_fixture(relpath))) as server:
        return list(ArxivSource(server.url, delay=0).newest("all:x", count))


def test_real_legacy_abstracts_read_as_paragraphs():
    for paper in real_papers("legacy/2018_10.xml", 10):
        for paragraph in readable_paragraphs(paper.abstract):
            assert "\n" not in paragraph and "  " not in paragraph
    first = readable_abstract(real_papers("legacy/2018_10.xml", 1)[0].abstract)
    assert "almost cosymplectic (κ,μ)-manifold is Einstein or cosymplectic" in first
    assert "$" not in first


def test_real_current_format_entities_and_names():
    glacier, chapter = real_papers("current/entity-in-title_2.xml", 2)
    assert glacier.title == "GLACIER and related R&D"  # `R&amp;D` in the feed: decoded once
    assert "some of the R&D activities" in glacier.abstract
    assert chapter.authors[0] == "Codruţ-Andrei Diaconu"
    assert len(readable_paragraphs(chapter.abstract)) == 3  # arXiv's "\n  " paragraph breaks


# Entities, decoded exactly once, everywhere


def test_entities_are_decoded_once_from_feed_to_email_web_and_text():
    entries = [
        Entry("2611.00001", "R&D at scale", abstract="Budgets for R&D & more."),
        # The feed carries `&amp;amp;`: an author literally typed `&amp;`, and so it stays.
        Entry("2611.00002", "Literal &amp; entity", abstract="Writes &lt;b&gt; as text."),
    ]
    with ArxivServer(default=Reply(body=feed(entries))) as server:
        first, second = ArxivSource(server.url, delay=0).newest("all:x", 2)
    assert (first.title, first.abstract) == ("R&D at scale", "Budgets for R&D & more.")
    assert (second.title, second.abstract) == ("Literal &amp; entity", "Writes &lt;b&gt; as text.")

    papers = tuple(
        make_paper(n, fetched.title, abstract=fetched.abstract)
        for n, fetched in enumerate((first, second), start=1)
    )
    content = DigestContent(
        date=date(2026, 11, 27),
        sections=(TopicSection("R&D", "rd", "Research & development", papers, 2),),
        web_url="https://digest.example.org/digests/2026-11-27",
        topic_names=("R&D",),
    )
    body = render_email(content, sender_name="Digest & Co")
    shown = lxml_html.fromstring(body.html).text_content()
    web = lxml_html.fromstring(render_web_digest(content, site_name="x")).text_content()
    for readable in (shown, web, body.text):
        assert "R&D at scale" in readable and "Budgets for R&D & more." in readable
        assert "Literal &amp; entity" in readable and "Writes &lt;b&gt; as text." in readable
        assert "R&amp;D" not in readable and "&amp;amp;" not in readable
    assert "R&amp;D at scale" in body.html and "Literal &amp;amp; entity" in body.html
    assert body.subject == "arXiv digest 2026-11-27: 2 new papers in R&D"
    title = lxml_html.fromstring(body.html).findtext(".//title")
    assert title == body.subject


@pytest.mark.parametrize(
    "name",
    ["李华", "Zoë Ångström", "Codruţ-Andrei Diaconu", "محمد علي", "Zoe\u0308 (decomposed)"],
)
def test_non_latin_author_names_stay_intact(name):
    paper = make_paper(1, "A title", authors=(name, "Bo Second"))
    content = DigestContent(
        date=date(2026, 11, 27),
        sections=(TopicSection("T", "t", "", (paper,), 1),),
        topic_names=("T",),
    )
    body = render_email(content, sender_name="Digest")
    assert authors_line((name, "Bo Second")) == f"{name}, Bo Second"
    assert f"{name}, Bo Second" in lxml_html.fromstring(body.html).text_content()
    assert f"{name}, Bo Second" in body.text


# Shortening abstracts (for the size bound)


def test_shorten_cuts_at_a_sentence_then_a_word_and_never_inside_math():
    text = "One sentence here. Two sentences here. Three sentences are here."
    assert shorten(text, 45) == "One sentence here. Two sentences here. …"
    assert shorten("word " * 30, 50) == ("word " * 10).strip() + " …"
    assert shorten(text, 200) == text
    cut = shorten(r"A formula $a + b + c + d + e$ and more words after it", 20)
    assert "$" not in cut and cut.endswith("…")
    assert readable_title(shorten(r"Uses $\alpha$ and $\beta + \gamma + \delta$ a lot.", 25))


def test_shorten_text_without_spaces():
    chinese = "我们提出了一种新方法。" * 20
    cut = shorten(chinese, 50)
    assert cut.endswith("。 …") and len(cut) <= 52


def test_shortened_abstracts_keep_their_paragraphs_readable():
    abstract = "First paragraph is long enough.\n  Second paragraph $L^3$ goes on and on and on."
    paragraphs = readable_paragraphs(shorten(abstract, 60))
    assert paragraphs[0] == "First paragraph is long enough."
    assert paragraphs[1].startswith("Second paragraph L³") and paragraphs[1].endswith("…")
