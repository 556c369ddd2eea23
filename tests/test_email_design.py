"""Email craft: the digest's layout, dark mode, preheader, contents, and the size bound.

Gmail clips an HTML part above ~102 KB; a digest of 10 topics × 20 papers with full abstracts
is ~565 KB. The email must stay under `HTML_SIZE_LIMIT` by showing less (shorter abstracts,
then titles only, then "N more on the web"), never by being cut off in the reader's inbox.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from lxml import html as lxml_html

from newsletter.digest.content import DigestContent, PaperItem, TopicSection
from newsletter.render.email import (
    RenderedBody,
    email_html,
    email_subject,
    email_text,
    paper_links_reserve,
    personalise,
    render_email,
)
from newsletter.render.fit import FIT_STEPS, HTML_SIZE_LIMIT, PERSONAL_RESERVE, Fit, fit_content
from newsletter.web import create_app
from tests.helpers import (
    CONTENT,
    make_paper,
    outbox,
    paper,
    set_env,
    store_papers,
    subscribe,
    text_of,
)

WEB_URL = "https://digest.example.org/digests/2026-11-27"

# A realistic abstract: ~1,600 characters (arXiv allows 1,920), LaTeX, a link at the end.
ABSTRACT = (
    "Multimodal large language models (MLLMs) have shown remarkable progress on visual "
    "question answering, yet their ability to reason over long videos remains limited by the "
    "quadratic cost of attention, which grows as $\\mathcal{{O}}(n^2)$ in the number of visual "
    "tokens. In this paper, we introduce Paper {number}, a token-efficient framework that "
    "compresses redundant frames with a learned $\\ell_1$-regularised selector and routes the "
    "remaining tokens through a lightweight temporal adapter.\n  We evaluate the approach on "
    "nine benchmarks spanning temporal grounding, dense captioning and long-form question "
    "answering, where it improves accuracy by 4.2 points on average while reducing the number "
    "of visual tokens by $8\\times$. Ablations show that the selector is robust to frame rate, "
    "resolution and domain shift, and that the adapter transfers across backbones from 3B to "
    "72B parameters without retraining. We further analyse failure cases and find that most "
    "remaining errors stem from counting and fine-grained spatial relations, which we discuss "
    "as directions for future work. Finally, we release a curated evaluation suite of 12,000 "
    "human-verified question-answer pairs with timestamps, so that future work can measure "
    "temporal reasoning rather than single-frame recognition. Code, models and data are "
    "available at https://github.com/example-lab/paper-{number}."
)
# The same abstract in Chinese: about 550 characters, three bytes each in UTF-8.
TRANSLATED = (
    "多模态大语言模型在视觉问答上取得了显著进展，但由于注意力的计算代价随视觉令牌数量呈二次增长，"
    "其对长视频进行推理的能力仍然有限。本文提出论文{number}，一种高效利用令牌的框架：它用学习得到的"
    "选择器压缩冗余帧，并通过轻量级时间适配器处理其余令牌。我们在涵盖时间定位、密集描述和长视频问答的"
    "九个基准上评估了该方法，平均准确率提高4.2个百分点，同时视觉令牌减少八倍。消融实验表明，选择器"
    "对帧率、分辨率和领域偏移都很稳健，适配器无需重新训练即可在三十亿到七百二十亿参数的骨干之间迁移。"
) * 2


def big_paper(topic: int, number: int, translated: bool) -> PaperItem:
    arxiv_id = f"2611.{topic * 100 + number:05d}"
    return PaperItem(
        arxiv_id=arxiv_id,
        version=1,
        title=f"Paper {arxiv_id}: Token-Efficient Long-Video Reasoning with $L^2$ Selectors",
        authors=("Ada First", "Bo Second", "Cy Third", "Di Fourth", "李华"),
        abstract=ABSTRACT.format(number=arxiv_id),
        published=datetime(2026, 11, 26, 17, 0, tzinfo=UTC),
        abs_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}v1",
        code_url=f"https://github.com/example-lab/paper-{arxiv_id}",
        primary_category="cs.CV",
        abstract_translated=TRANSLATED.format(number=arxiv_id) if translated else None,
    )


def big_digest(translated: bool = False, topics: int = 10, papers: int = 20) -> DigestContent:
    sections = tuple(
        TopicSection(
            f"Topic {t}",
            f"topic-{t}",
            f"Everything new about topic {t}.",
            tuple(big_paper(t, n, translated) for n in range(papers)),
            papers,
        )
        for t in range(topics)
    )
    return DigestContent(
        date=date(2026, 11, 27),
        sections=sections,
        language="zh" if translated else "en",
        web_url=WEB_URL,
        base_url="https://digest.example.org",
        topic_names=tuple(section.name for section in sections),
    )


def listed(section_html: str) -> set[str]:
    return set(re.findall(r'href="https://arxiv\.org/abs/(2611\.\d+)"', section_html))


@pytest.mark.parametrize("translated", [False, True], ids=["english", "with-translations"])
def test_ten_topics_of_twenty_papers_stay_under_gmail_s_clipping(translated):
    content = big_digest(translated)
    full = render_email(content, sender_name="arXiv Digest", size_limit=10**9)  # all of it
    body = render_email(content, sender_name="arXiv Digest")
    personal = personalise(
        body,
        "https://digest.example.org/unsubscribe/" + "x" * 120,
        "https://digest.example.org/preferences/" + "x" * 120,
        "https://digest.example.org/digests/2026-11-27/for/" + "x" * 120,
    )
    size = len(personal.html.encode("utf-8"))
    print(f"\nHTML: {len(full.html.encode()):,} bytes in full, {size:,} as sent with {body.fit}")
    assert len(full.html.encode()) > 3 * HTML_SIZE_LIMIT  # the test means something
    assert size < HTML_SIZE_LIMIT
    assert body.fit != Fit()
    # Nothing is cut off: the footer, with its unsubscribe link, is all there.
    assert personal.html.rstrip().endswith("</html>")
    assert 'href="https://digest.example.org/unsubscribe/' in personal.html

    fitted = fit_content(content, body.fit)
    for section in fitted.sections:
        assert len(section.papers) + len(section.titles_only) + section.more == section.total
        assert section.more > 0
        more = f"{section.more} more papers in {section.name} on the web"
        assert f'href="{WEB_URL}#{section.slug}"' in body.html
        assert more in body.html and f"{more}: {WEB_URL}#{section.slug}" in body.text
    shown = {p.arxiv_id for s in fitted.sections for p in s.papers + s.titles_only}
    assert listed(body.html) == shown
    assert set(re.findall(r"https://arxiv\.org/abs/(2611\.\d+)", body.text)) == shown
    # Abstracts that are shown are shortened, with a visible ellipsis.
    assert "…" in lxml_html.fromstring(body.html).text_content()


def test_the_fit_steps_show_less_and_less():
    content = big_digest(topics=3, papers=12)
    sizes = [len(email_html(content, "arXiv Digest", step).encode()) for step in FIT_STEPS]
    assert sizes == sorted(sizes, reverse=True)


def test_a_digest_that_fits_is_sent_whole():
    content = big_digest(topics=2, papers=3)
    body = render_email(content, sender_name="arXiv Digest")
    assert body.fit == Fit()
    assert body.html.count("Code, models and data are available") == 6


def test_a_smaller_limit_shortens_abstracts_before_dropping_papers():
    content = big_digest(topics=2, papers=5)
    whole = render_email(content, sender_name="arXiv Digest")
    limit = len(whole.html.encode()) - 2_000
    body = render_email(content, sender_name="arXiv Digest", size_limit=limit)
    assert body.fit.abstract_chars is not None and body.fit.cards is None
    assert listed(body.html) == listed(whole.html)


# Design


@pytest.fixture(scope="module")
def email() -> RenderedBody:
    return render_email(CONTENT, sender_name="arXiv Digest")


def test_dark_mode_is_declared_and_styled(email):
    head = email.html.split("</head>", 1)[0]
    assert '<meta name="color-scheme" content="light dark">' in head
    assert '<meta name="supported-color-schemes" content="light dark">' in head
    assert "color-scheme: light dark" in head
    dark = head.split("@media (prefers-color-scheme: dark)", 1)[1]
    for selector in (".body-bg", ".topic-panel", ".paper-title a", ".paper-abstract"):
        assert selector in dark
    assert "[data-ogsc]" in head  # Outlook.com's own dark mode


def test_lang_outlook_fallbacks_and_no_images(email):
    assert re.search(r'<html[^>]* lang="en" dir="ltr"', email.html)
    assert "<!--[if mso | IE]>" in email.html and "<o:OfficeDocumentSettings>" in email.html
    assert "<img" not in email.html
    arabic = render_email(replace(CONTENT, language="ar"), sender_name="x")
    assert re.search(r'<html[^>]* lang="ar" dir="rtl"', arabic.html)


def test_header_shows_date_and_counts(email):
    text = lxml_html.fromstring(email.html).text_content()
    assert "New on arXiv, 2026-11-27" in text
    assert re.search(r"8\s*new papers in 2 topics", text)


def test_preheader_sums_up_the_day_and_hides(email):
    document = lxml_html.fromstring(email.html)
    (hidden,) = document.find_class("preheader")
    assert "display:none" in hidden.get("style").replace(" ", "")
    summary = hidden.text_content()
    assert summary.startswith("8 new papers today: MLLM (7), Diffusion (1). First: PanGu-π")
    assert "\u200c" in summary  # filler, so the inbox preview stops there
    body_text = document.body.text_content()
    assert body_text.index("8 new papers today") < body_text.index("View in browser")


def test_a_topic_listed_under_an_earlier_one_counts_its_papers(cli, settings, monkeypatch):
    set_env(monkeypatch, base_url="https://digest.example.org")
    for name in ("MLLM", "Diffusion", "NeRF", "SLAM"):
        cli("topics", "add", name, "--keyword", name.lower())
    shared = [paper(1), paper(2), paper(3)]
    store_papers(settings, "MLLM", *shared, paper(4))
    store_papers(settings, "Diffusion", *shared)  # all three are listed under MLLM
    store_papers(settings, "NeRF", shared[0], paper(5))
    subscribe(cli, "ada@example.org", "MLLM", "Diffusion", "NeRF", "SLAM")
    cli("send")
    message = outbox(settings)["ada@example.org"]
    text = text_of(message)
    assert "  - MLLM: 4 papers" in text
    assert "  - Diffusion: 3 papers, listed under MLLM" in text
    assert "  - NeRF: 2 papers, 1 listed under MLLM" in text
    assert "  - SLAM: no new papers" in text
    assert "0 papers" not in text
    html = message.get_body(("html",)).get_content()
    assert "3 papers, listed under MLLM" in html and "0 papers" not in html
    assert 'id="diffusion"' not in html  # no empty panel for it
    assert 'href="#mllm"' in html and 'href="#diffusion"' not in html
    page = create_app(settings).test_client().get(f"/digests/{settings.today().isoformat()}")
    assert "3 papers, listed under MLLM" in page.get_data(as_text=True)


def test_the_text_part_reads_on_its_own(email):
    text = email.text
    lines = text.splitlines()
    assert lines[0] == "arXiv Digest · new on arXiv, 2026-11-27"
    assert "In this issue:" in text and "  - NeRF: no new papers" in text
    assert all(len(line) <= 76 for line in lines if "://" not in line)
    for markup in ("<p", "<div", "<a ", "&nbsp;", "&amp;", "&rarr;"):
        assert markup not in text


@pytest.mark.parametrize(
    ("topics", "papers", "translated", "limit"),
    [(2, 3, False, None), (2, 10, False, None), (3, 10, False, None), (5, 10, True, None),
     (10, 20, False, None), (3, 10, False, 60_000), (1, 4, False, 20_000)],
)  # fmt: skip
def test_the_size_search_finds_the_first_step_that_fits(topics, papers, translated, limit):
    """However the search walks the steps, its answer is the first step small enough."""
    content = big_digest(translated, topics, papers)
    limit = limit or HTML_SIZE_LIMIT
    budget = limit - PERSONAL_RESERVE - paper_links_reserve(content)
    fitting = [
        step for step in FIT_STEPS if email_html(content, "arXiv Digest", step, budget) is not None
    ]
    body = render_email(content, sender_name="arXiv Digest", size_limit=limit)
    assert body.fit == (fitting[0] if fitting else FIT_STEPS[-1])
    assert (body.subject, body.html, body.text) == (
        email_subject(content),
        email_html(content, "arXiv Digest", body.fit),
        email_text(content, "arXiv Digest", body.fit),
    )


def test_no_readers_order_takes_a_ranked_email_over_the_limit():
    """With ranking, a reader's order picks which of a section's papers are shown: the size
    ladder's step fits the largest cards any order can pick, not the newest ones. Here the ten
    newest papers of each section have hundreds of authors (three shown) and short abstracts,
    the thirty older ones long abstracts: a reader who ranks the long ones first still gets an
    email under the limit."""
    long_abstract = "A long abstract sentence about learned representations. " * 30
    many = tuple(f"Author {n} Collaboration" for n in range(300))
    sections = []
    for t in range(3):
        newest = [make_paper(t * 100 + n, f"Short {t}.{n}", authors=many) for n in range(10)]
        older = [
            make_paper(t * 100 + 10 + n, f"Long {t}.{n}", abstract=long_abstract) for n in range(30)
        ]
        pool = (*newest, *older)
        sections.append(
            TopicSection(f"Topic {t}", f"topic-{t}", "", pool[:10], len(pool), pool=pool)
        )
    content = DigestContent(
        date=date(2026, 11, 27),
        sections=tuple(sections),
        web_url=WEB_URL,
        base_url="https://digest.example.org",
        topic_names=tuple(section.name for section in sections),
    )
    body = render_email(content, sender_name="arXiv Digest", ranked=True)
    longest_first = [list(range(10, 40)) + list(range(10)) for _ in sections]
    html, _text = body.frame.bodies(longest_first)
    personal = personalise(
        replace(body, html=html),
        "u",
        "p",
        "w",
        paper_url=lambda _: "https://x.example/" + "t" * 100,
    )
    assert len(personal.html.encode()) <= HTML_SIZE_LIMIT
    unranked = render_email(content, sender_name="arXiv Digest")
    assert body.fit != unranked.fit  # the newest alone would have fitted a larger step


@pytest.mark.parametrize(("topics", "papers"), [(5, 10), (3, 25), (2, 40)])
def test_the_size_search_compiles_fewer_frames(topics, papers, monkeypatch):
    """A frame's MJML and inlining are most of a render: once one step's frame is measured, a
    step that its papers and that frame (less what its fewer slots can take away) put over the
    budget is refused without compiling it. The same search without that floor compiles more
    frames and finds the same step."""
    import newsletter.render.email as email_module
    from newsletter.render.email import html_frame
    from newsletter.render.fit import first_that_fits

    compiled = []
    real = email_module.mjml_to_email
    monkeypatch.setattr(email_module, "mjml_to_email", lambda doc: compiled.append(1) or real(doc))
    content = big_digest(True, topics, papers)
    body = render_email(content, sender_name="arXiv Digest")
    with_floor = len(compiled)
    compiled.clear()
    budget = HTML_SIZE_LIMIT - PERSONAL_RESERVE - paper_links_reserve(content)
    fit, _html = first_that_fits(
        lambda step, limit: html_frame(content, "arXiv Digest", step, limit), budget
    )
    assert fit == body.fit != FIT_STEPS[0]
    assert with_floor < len(compiled), (with_floor, len(compiled))
