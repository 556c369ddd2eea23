"""codelinks: links to code and project pages, as authors really write them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from arxiv_server import ArxivServer, Reply, shared_fixture

from newsletter.sources.arxiv import ArxivSource
from newsletter.sources.codelinks import find_code_links, link_label
from newsletter.sources.papers import FetchedPaper


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Code: https://github.com/owner/repo", "https://github.com/owner/repo"),
        ("Code is at https://github.com/owner/repo.", "https://github.com/owner/repo"),
        ("(see https://github.com/owner/repo)", "https://github.com/owner/repo"),
        ("at https://github.com/owner/repo, and", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo/tree/main/src", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo#readme", "https://github.com/owner/repo"),
        ("http://www.github.com/owner/repo/", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo.js", "https://github.com/owner/repo.js"),
        ("Code: github.com/owner/repo", "https://github.com/owner/repo"),
        (r"\url{https://github.com/owner/repo}", "https://github.com/owner/repo"),
        (r"\href{https://github.com/owner/repo}{our code}", "https://github.com/owner/repo"),
        ("https://github.com/owner/repo}", "https://github.com/owner/repo"),
        (r"https://github.com/owner/my\_repo", "https://github.com/owner/my_repo"),
        (
            "https://gitlab.com/group/sub/project/-/tree/main",
            "https://gitlab.com/group/sub/project",
        ),
        ("https://huggingface.co/org/model/blob/main/x.py", "https://huggingface.co/org/model"),
        ("https://huggingface.co/spaces/org/demo", "https://huggingface.co/spaces/org/demo"),
        (
            "https://huggingface.co/datasets/org/data/viewer",
            "https://huggingface.co/datasets/org/data",
        ),
        ("Project page: https://a-b.github.io/Proj/.", "https://a-b.github.io/Proj/"),
        ("see http://lab.github.io/x", "https://lab.github.io/x"),
        ("Project page: https://spherelab.ai/pion/)", "https://spherelab.ai/pion/"),
        ("Our website: https://example.org/tool", "https://example.org/tool"),
        ("The code is hosted at https://example.org/x_(y)", "https://example.org/x_(y)"),
        ("https://codeberg.org/owner/repo/src/main", "https://codeberg.org/owner/repo"),
    ],
)
def test_one_link_normalised(text: str, expected: str) -> None:
    assert find_code_links(text) == (expected,)


@pytest.mark.parametrize(
    "text",
    [
        "See https://arxiv.org/abs/2401.00001 and https://doi.org/10.1/x",
        "Published version: https://dx.doi.org/10.1103/PhysRevB.71.184511",
        "The proceedings are at https://icst2022.vrain.upv.es/",  # no word says "code"
        "A video is available at the following URL: https://youtu.be/edgCNbGSGEY",
        "https://github.com/features/copilot and https://github.com/owner",
        "https://huggingface.co/papers/2401.00001",
        "Visit https://github.com for more",
        "write to ada@lab.github.io",
        "",
    ],
)
def test_not_a_code_link(text: str) -> None:
    assert find_code_links(text) == ()


def test_order_is_github_gitlab_huggingface_then_pages_and_each_once() -> None:
    abstract = (
        "Project page: https://lab.github.io/x/. Models: https://huggingface.co/org/m. "
        "Mirror: https://gitlab.com/g/p. Code: https://github.com/org/repo."
    )
    comment = "Code at https://github.com/Org/Repo/ and https://lab.github.io/x"

    assert find_code_links(abstract, comment) == (
        "https://github.com/org/repo",
        "https://gitlab.com/g/p",
        "https://huggingface.co/org/m",
        "https://lab.github.io/x/",
    )


def test_several_repositories_keep_their_order() -> None:
    text = "https://github.com/b/second then https://github.com/a/first"

    assert find_code_links(text) == ("https://github.com/b/second", "https://github.com/a/first")


def test_absent_texts_are_fine() -> None:
    assert find_code_links(None, "", "Code: https://github.com/a/b") == ("https://github.com/a/b",)


def test_links_broken_by_line_wrapping_are_joined() -> None:
    legacy_abstract = (
        "  Our code is available at https://github.com/\nowner/repo and the project\n"
        "page at https://gitlab.com/owner/\n  long-project-name/-/tree/main ."
    )

    assert find_code_links(legacy_abstract) == (
        "https://github.com/owner/repo",
        "https://gitlab.com/owner/long-project-name",
    )


def test_a_space_after_the_host_is_joined_but_a_sentence_is_not_eaten() -> None:
    assert find_code_links("Code: https://github.com/ owner/repo") == (
        "https://github.com/owner/repo",
    )
    assert find_code_links("Code: https://github.com/owner/repo and more text") == (
        "https://github.com/owner/repo",
    )
    assert find_code_links("https://github.com/owner/my-\nrepo is public") == (
        "https://github.com/owner/my-repo",
    )


# --------------------------------------------------------------------------- real feeds


def papers_in(name: str) -> Iterator[FetchedPaper]:
    with ArxivServer(default=Reply.file(shared_fixture(name))) as server:
        yield from ArxivSource(server.url, delay=0, page_size=100).newest("x", 25)


def test_links_in_real_comments_and_abstracts_may_2026() -> None:
    links = {
        paper.arxiv_id: paper.code_urls
        for paper in papers_in("current/cs-ai-lg-cl_2026-05-12_25.xml")
        if paper.code_urls
    }

    assert links == {
        # comment "Project repository here: https://github.com/alansong1322/VECA"
        "2605.12491": ("https://github.com/alansong1322/VECA",),
        # abstract "... for reproducibility, at https://github.com/IBM/task-...-refinement."
        "2605.12487": ("https://github.com/IBM/task-aware-embedding-refinement",),
        # comment "Preprint, 37 pages. Code at https://github.com/seal-rg/streaming/"
        "2605.12460": ("https://github.com/seal-rg/streaming",),
        # comment "(30 pages, 19 figures, project page: https://spherelab.ai/pion/)"
        "2605.12492": ("https://spherelab.ai/pion/",),
        "2605.12495": ("https://huangrh99.github.io/AlphaGRPO/",),
        "2605.12481": ("https://x-plug.github.io/ToolCUA/",),
        "2605.12480": ("https://zghhui.github.io/OmniNFT/",),
        # abstract "... on the project page: https://seokwonjung-jay.github.io/meme-eval/."
        "2605.12477": ("https://seokwonjung-jay.github.io/meme-eval/",),
    }


def test_links_in_real_comments_and_abstracts_july_2026() -> None:
    papers = list(papers_in("current/cs-ai-lg-cl_2026-07-30_25.xml"))
    with_links = [paper for paper in papers if paper.code_urls]

    assert len(papers) == 25
    assert len(with_links) == 6
    by_id = {paper.arxiv_id: paper.code_urls for paper in with_links}
    # In the abstract ("Code is available at: ...") and the comment ("Code: ..."): listed once.
    assert by_id["2607.28627"] == ("https://github.com/avaxiao/ReToken",)
    assert by_id["2607.28628"] == ("https://github.com/alexmininno/GNN-Pathfinders",)
    assert by_id["2607.28609"] == ("https://os-copilot.github.io/OSReward-Home/",)


@pytest.mark.parametrize(
    "url, label",
    [
        ("https://github.com/owner/repo", "Code"),
        ("https://gitlab.com/group/sub/project", "Code"),
        ("https://huggingface.co/spaces/owner/demo", "Code"),
        ("https://owner.github.io/project/", "Project"),
        ("https://example.org/project-page", "Project"),
    ],
)
def test_link_label(url: str, label: str) -> None:
    assert link_label(url) == label
