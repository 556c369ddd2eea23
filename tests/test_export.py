"""`newsletter export`: the seed's Markdown page and the JSON behind it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.models import Translation
from newsletter.publish.export import github_anchor, markdown_cell
from tests.helpers import REPO, paper, store_papers

EXPECTED = REPO / "tests" / "fixtures" / "export" / "seed.zh.md"
"""Written by hand from the papers below, and checked line by line."""


def made(number: int, day: int, title: str, abstract: str, *code: str, authors=None):
    published = datetime(2026, 11, day, 17, 0, tzinfo=UTC)
    return replace(
        paper(number),
        title=title,
        abstract=abstract,
        published=published,
        updated=published,
        code_urls=code,
        authors=authors or ("Ada First",),
    )


PANGU = made(
    1,
    25,
    "PanGu-$π$: Enhancing Language Models via Nonlinearity",
    "We study models for R&D\nwith 50% fewer parameters.\n  A second paragraph on $L^3$ losses.",
    "https://github.com/example/pangu",
)
ALPHA = made(
    2,
    26,
    r"$\alpha$-Net: \emph{Sharper} A* Search_Net [v2] for R&D <b>",
    # The feed said `&amp;amp;`: the XML parser decoded it once, to a literal `&amp;`.
    "Keeps the literal entity &amp; as typed, and R&D as is.",
    authors=("李华", "Zoë Ångström", "Codruţ-Andrei Diaconu"),
)
KEYPOINTS = made(
    3,
    24,
    "Matching Keypoints",
    "Keypoints are\nmatched | fast.\n  Second paragraph.",
    "https://kp.github.io/",
)


@pytest.fixture
def papers(cli, settings):
    cli("topics", "add", "MLLM", "-k", "mllm", "-d", "Multimodal large language models.")
    cli("topics", "add", "Image Matching", "-k", "image matching")
    cli("topics", "add", "NeRF", "-k", "nerf")
    store_papers(settings, "MLLM", PANGU, ALPHA)
    store_papers(settings, "Image Matching", KEYPOINTS, ALPHA)
    with session_scope(settings) as session:
        (pangu,) = store.papers_by_arxiv_ids(session, [PANGU.arxiv_id])
        session.add(
            Translation(
                paper_id=pangu.id,
                language="zh",
                provider="test",
                abstract="我们研究模型。\n\n第二段：$L^3$ 损失。",
            )
        )
    return settings


def test_markdown_matches_the_hand_checked_page(cli, papers):
    page = cli("export", "markdown", "--lang", "zh", "--date", "2026-11-27").output
    assert page == EXPECTED.read_text(encoding="utf-8")


def test_markdown_in_english_and_to_a_file(cli, papers, tmp_path):
    target = tmp_path / "docs" / "index.md"
    result = cli("export", "markdown", "-o", str(target), "--topic", "MLLM", "--date", "2026-11-27")
    assert f"Wrote 2 paper(s) in 1 topic(s) to {target}" in result.output
    page = target.read_text(encoding="utf-8")
    assert page.startswith("## Updated on 2026.11.27\n")
    assert "## Image Matching" not in page
    assert (
        "|We study models for R&D with 50% fewer parameters."
        "<br><br>A second paragraph on L³ losses.|"
    ) in page
    # Newest first.
    assert page.index("2611.00002") < page.index("2611.00001")


def test_a_language_without_translations_falls_back_to_english(cli, papers):
    page = cli("export", "markdown", "--lang", "de", "--topic", "MLLM").output
    assert "We study models for R&D" in page


def test_json_is_the_data_behind_the_page(cli, papers):
    data = json.loads(cli("export", "json", "--lang", "zh", "--date", "2026-11-27").output)
    assert data["updated"] == "2026-11-27" and data["language"] == "zh"
    assert [topic["name"] for topic in data["topics"]] == ["MLLM", "Image Matching", "NeRF"]
    mllm = data["topics"][0]
    assert mllm["anchor"] == "mllm"
    alpha, pangu = mllm["papers"]
    assert alpha["title"] == "α-Net: Sharper A* Search_Net [v2] for R&D <b>"
    assert alpha["abstract"] == "Keeps the literal entity &amp; as typed, and R&D as is."
    assert alpha["authors"] == ["李华", "Zoë Ångström", "Codruţ-Andrei Diaconu"]
    assert alpha["abstract_translated"] is None and alpha["code_url"] is None
    assert pangu["published"] == "2026-11-25"
    assert pangu["abstract_translated"] == "我们研究模型。\n\n第二段：L³ 损失。"
    assert pangu["code_url"] == "https://github.com/example/pangu"
    assert data["topics"][2]["papers"] == []


def test_only_http_links_leave_and_titles_cannot_inject_links_or_html(cli, settings):
    cli("topics", "add", "MLLM", "-k", "mllm")
    hostile = replace(
        made(4, 26, "[Click](javascript:alert(1)) <img src=x onerror=alert(1)> *bold*", "A."),
        abs_url="javascript:alert(1)",
        pdf_url="data:text/html,<script>alert(1)</script>",
        code_urls=("javascript:alert(2)", "https://github.com/a/b c|d"),
    )
    store_papers(settings, "MLLM", hostile)
    page = cli("export", "markdown", "--date", "2026-11-27").output
    row = next(line for line in page.splitlines() if "2611.00004" in line)

    # Every link target is http(s); the title's own `](` is escaped text, not a link.
    targets = re.findall(r"(?<!\\)\]\(([^)]*)\)", row)
    assert targets and all(target.startswith("https://") for target in targets)
    assert r"**[\[Click\]" in row and r"\<img src=x onerror=alert(1)\>" in row
    assert "(https://arxiv.org/abs/2611.00004)" in row  # the paper's own page instead
    assert "(https://github.com/a/b%20c%7Cd)" in row  # cannot end the link or the cell
    data = json.loads(cli("export", "json").output)
    (exported,) = data["topics"][0]["papers"]
    assert exported["abs_url"] == "https://arxiv.org/abs/2611.00004"
    assert exported["pdf_url"] is None
    assert exported["code_urls"] == ["https://github.com/a/b c|d"]


def test_the_code_link_is_the_first_http_one_in_the_export_and_the_digest(cli, settings):
    from sqlalchemy import select

    from newsletter.digest.content import paper_item
    from newsletter.models import Paper

    cli("topics", "add", "MLLM", "-k", "mllm")
    project = "https://example.org/project"  # no repository: the project page is the link
    store_papers(settings, "MLLM", made(5, 26, "Title", "Abstract.", "javascript:x()", project))

    (exported,) = json.loads(cli("export", "json").output)["topics"][0]["papers"]
    with session_scope(settings) as session:
        (row,) = session.scalars(select(Paper))
        in_the_digest = paper_item(row).code_url

    assert exported["code_url"] == in_the_digest == project


def test_an_unknown_language_or_topic_is_an_error(cli, papers):
    result = cli("export", "markdown", "--lang", "not a language", ok=False)
    assert result.exit_code == 1 and "not a language code" in result.output
    result = cli("export", "json", "--topic", "Nope", ok=False)
    assert result.exit_code == 1 and "Nope" in result.output


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("a | b", r"a \| b"),
        ("R&D", "R&D"),
        ("R&amp;D", r"R\&amp;D"),
        ("&#38; and &lt;", r"\&#38; and \&lt;"),
        ("<script>", r"\<script\>"),
        ("*bold* _it_ `code` ~~x~~ [l](u)", r"\*bold\* \_it\_ \`code\` \~\~x\~\~ \[l\](u)"),
        ("back\\slash", "back\\\\slash"),
        ("one\nline\n\ntwo", "one line<br><br>two"),
    ],
)
def test_markdown_cell_escapes_once(text, cell):
    assert markdown_cell(text) == cell


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [("MLLM", "mllm"), ("Visual Localization", "visual-localization"), ("R&D: 3-D", "rd-3-d")],
)
def test_github_anchor(heading, anchor):
    assert github_anchor(heading) == anchor
