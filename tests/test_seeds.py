"""Seed papers and the library's BibTeX: arXiv ids as people write them, BibTeX files as
Zotero and Google Scholar export them (a broken entry reported, the rest kept), matched by
eprint id, DOI and exact title against a local arXiv serving real responses; the library
exported as BibTeX, read back by bibtexparser and by the seed import."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import bibtexparser
import pytest
from bibtexparser.middlewares import LatexDecodingMiddleware

from newsletter import store
from newsletter.db import session_scope
from newsletter.intake.seeds import arxiv_id_of, normalised_title, seeds_from_bibtex
from newsletter.models import Paper
from newsletter.publish.bibtex import bibtex_text, library_bibtex
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import paper, set_env, store_papers, subscribe

ADA = "ada@example.org"
PROTEIN_TITLE = "Controllable Protein Design with Language Models"


@pytest.fixture
def arxiv(settings, cli, example_topics, monkeypatch) -> Iterator[ArxivServer]:
    """A local arXiv, and Ada on the list."""
    with ArxivServer() as server:
        set_env(monkeypatch, arxiv_api_url=server.url, arxiv_backoff="0.01")
        subscribe(cli, ADA, "SLAM")
        yield server


def seeds_of(settings, email: str) -> dict[str, bool]:
    """arXiv id → seed mark of the reader's rows."""
    with session_scope(settings) as session:
        reader = store.get_subscriber(session, email).id
        positive, _negative = store.reader_examples(session, reader)
        return {session.get(Paper, paper_id).arxiv_id: True for paper_id in positive}


def stored(settings, arxiv_id: str):
    with session_scope(settings) as session:
        found = store.paper_by_arxiv_id(session, arxiv_id)
        return None if found is None else (found.title, found.doi, found.authors[:2])


# ------------------------------------------------------------------------- reading what's given


@pytest.mark.parametrize(
    "typed, arxiv_id",
    [
        ("2405.01234", "2405.01234"),
        ("2405.01234v3", "2405.01234"),
        ("0704.0001", "0704.0001"),
        ("arXiv:2405.01234v2", "2405.01234"),
        ("ARXIV: 1707.08567", "1707.08567"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("arXiv:math.AG/0601001v2", "math.AG/0601001"),
        ("https://arxiv.org/abs/2405.01234v2", "2405.01234"),
        ("http://arxiv.org/pdf/2405.01234v1.pdf", "2405.01234"),
        ("arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        (" https://export.arxiv.org/abs/1707.08567/ ", "1707.08567"),
        ("2405.1234", None),
        ("12345.6789", None),
        ("https://example.org/abs/2405.01234", None),
        ("Attention is all you need", None),
    ],
)
def test_arxiv_ids_in_the_ways_people_write_them(typed, arxiv_id):
    assert arxiv_id_of(typed) == arxiv_id


ZOTERO_AND_SCHOLAR = r"""
@article{dosovitskiy2020image,
  title={An image is worth 16x16 words: Transformers for image recognition at scale},
  author={Dosovitskiy, Alexey and Beyer, Lucas},
  journal={arXiv preprint arXiv:2010.11929},
  year={2020}
}

@misc{he_masked_2021,
	title = {Masked {Autoencoders} {Are} {Scalable} {Vision} {Learners}},
	url = {http://arxiv.org/abs/2111.06377},
	doi = {10.48550/arXiv.2111.06377},
	number = {arXiv:2111.06377},
	publisher = {arXiv},
}

@article{broken_entry,
  title = {A title that never closes,
  author = {Someone},

@article{knot2022,
  title = {AlphaFold predicts the most complex protein knot},
  doi = {https://doi.org/10.1002/PRO.4380},
}

@inproceedings{nothing_to_match,
  booktitle = {Proceedings},
}
"""


def test_a_bibtex_file_is_read_entry_by_entry_and_a_broken_one_is_reported():
    seeds, problems = seeds_from_bibtex(ZOTERO_AND_SCHOLAR, "refs.bib")
    assert [(s.label, s.arxiv_id, s.doi) for s in seeds] == [
        ("refs.bib:2 dosovitskiy2020image", "2010.11929", None),
        ("refs.bib:9 he_masked_2021", "2111.06377", None),
        ("refs.bib:21 knot2022", None, "10.1002/PRO.4380"),
    ]
    assert seeds[1].title == "Masked Autoencoders Are Scalable Vision Learners"
    assert [(p.label, p.reason) for p in problems] == [
        (
            "refs.bib:17 broken_entry",
            "not valid BibTeX: an entry that does not close (a missing brace or quote)",
        ),
        ("refs.bib:26 nothing_to_match", "has no arXiv id, DOI or title to match"),
    ]


def test_titles_compare_without_case_accents_punctuation_or_latex():
    assert normalised_title(
        "On {BERT}: Pre-Training -- of Über $\\alpha$-Nets"
    ) == normalised_title("on BERT pre training of uber α nets")
    assert normalised_title("Masked autoencoders") != normalised_title("Masked autoencoder")


# --------------------------------------------------------------------------- matching to arXiv


def test_seeds_by_arxiv_id_are_asked_with_id_list_in_batches(settings, cli, arxiv, monkeypatch):
    set_env(monkeypatch, arxiv_page_size="2")
    arxiv.serve(
        shared_fixture("current/versions-doi-journalref_3.xml"), id_list="2410.08355,2207.07410"
    )
    arxiv.serve(shared_fixture("current/id-lookup_1707.08567.xml"), id_list="1707.08567")
    result = cli(
        "subscribers", "seed", ADA, "arXiv:2410.08355v1", "https://arxiv.org/abs/2207.07410",
        "1707.08567", "2410.08355",
    )  # fmt: skip
    assert "4 matched; 3 new seed(s)" in result.output
    assert [request.params["id_list"] for request in arxiv.requests] == [
        "2410.08355,2207.07410",
        "1707.08567",
    ]
    assert stored(settings, "1707.08567")[0].startswith("Proceedings of Workshop AEW10")
    assert stored(settings, "2207.07410")[1] == "10.1002/pro.4380"
    assert set(seeds_of(settings, ADA)) == {"2410.08355", "2207.07410", "1707.08567"}
    # Seeding again changes nothing and asks arXiv nothing: the papers are stored.
    again = cli("subscribers", "seed", ADA, "1707.08567")
    assert "1 matched; 0 new seed(s)" in again.output and len(arxiv.requests) == 2


def test_an_id_arxiv_does_not_know_is_not_found_and_the_others_are_kept(settings, cli, arxiv):
    arxiv.serve(shared_fixture("current/id-lookup_1707.08567.xml"), id_list="1707.08567,2612.99999")
    result = cli("subscribers", "seed", ADA, "1707.08567", "2612.99999", "not-an-id", ok=False)
    assert result.exit_code == 1
    assert "not found  2612.99999  arXiv has no paper 2612.99999" in result.output
    assert "invalid    not-an-id  not an arXiv identifier" in result.output
    assert set(seeds_of(settings, ADA)) == {"1707.08567"}


def test_seeds_by_doi_are_matched_among_stored_papers_without_a_request(
    settings, cli, arxiv, tmp_path
):
    # The real response carries the DOI: once that paper is stored, its DOI names it.
    three = shared_fixture("current/versions-doi-journalref_3.xml")
    arxiv.serve(three, id_list="2410.08355,2207.07410")
    cli("subscribers", "seed", "bo@example.org", "2207.07410", ok=False)  # Bo is not on the list
    assert arxiv.requests == []
    store_papers(settings, "SLAM", replace(paper(7), doi="10.5555/Local-DOI"))
    cli("subscribers", "seed", "ada@example.org", "2410.08355", "2207.07410")
    requests_before = len(arxiv.requests)
    bib = tmp_path / "scholar.bib"
    bib.write_text(
        "@article{a, title={Another title entirely}, doi={https://doi.org/10.1002/PRO.4380}}\n"
        "@article{b, doi={10.5555/local-doi}}\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "seed", ADA, "--bibtex", str(bib))
    assert f"matched    {bib}:1 a  2207.07410 (by DOI)" in result.output
    assert f"matched    {bib}:2 b  2611.00007 (by DOI)" in result.output
    assert len(arxiv.requests) == requests_before  # arXiv cannot search by DOI: none asked
    assert set(seeds_of(settings, ADA)) == {"2410.08355", "2207.07410", "2611.00007"}


def test_seeds_by_exact_title_and_the_ambiguous_and_unknown_ones(settings, cli, arxiv, tmp_path):
    three = shared_fixture("current/versions-doi-journalref_3.xml")
    arxiv.serve(three, search_query=f'ti:"{PROTEIN_TITLE}"')
    twins = [Entry("2611.10001", "Deep Twins"), Entry("2611.10002", "Deep twins!")]
    arxiv.route(Reply(body=feed(twins)), search_query='ti:"Deep Twins"')
    arxiv.serve(shared_fixture("current/empty-result.xml"), search_query='ti:"Nowhere to be found"')
    # A title search that finds a near miss only ("Protein Language Models", not the title).
    arxiv.serve(
        shared_fixture("current/versions-doi-journalref_3.xml"), search_query='ti:"Metalic"'
    )
    bib = tmp_path / "zotero.bib"
    bib.write_text(
        "@article{protein, title = {{Controllable} Protein Design with Language Models},"
        " doi = {10.9999/not-stored}}\n"
        "@article{twins, title = {Deep Twins}}\n"
        "@article{nowhere, title = {Nowhere to be found}}\n"
        "@article{near, title = {Metalic}}\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "seed", ADA, "--bibtex", str(bib), ok=False)
    assert result.exit_code == 1
    assert f"matched    {bib}:1 protein  2201.07338 (by title)" in result.output
    assert "ambiguous" in result.output and "2611.10001, 2611.10002" in result.output
    assert f"not found  {bib}:3 nowhere  no arXiv paper has exactly this title" in result.output
    assert f"not found  {bib}:4 near" in result.output
    assert "1 matched, 2 not found, 1 ambiguous; 1 new seed(s)" in result.output
    assert set(seeds_of(settings, ADA)) == {"2201.07338"}
    assert stored(settings, "2201.07338")[0] == PROTEIN_TITLE
    assert stored(settings, "2611.10001") is None  # an ambiguous match stores nothing


def test_arxiv_failing_marks_its_entries_and_keeps_the_rest(settings, cli, arxiv):
    store_papers(settings, "SLAM", paper(1))
    arxiv.route(Reply.text("Rate exceeded.", status=503))
    result = cli("subscribers", "seed", ADA, "2611.00001", "1707.08567", ok=False)
    assert "matched    2611.00001" in result.output
    assert "failed     1707.08567" in result.output and "Rate exceeded" in result.output
    assert set(seeds_of(settings, ADA)) == {"2611.00001"}


# ------------------------------------------------------------------- the library's BibTeX


def library_paper(number: int, **fields) -> SimpleNamespace:
    values = {
        "arxiv_id": f"2405.{number:05d}",
        "title": f"Paper {number}",
        "authors": ["Kaiming He", "Xinlei Chen"],
        "published": datetime(2024, 5, 1, tzinfo=UTC),
        "primary_category": "cs.CV",
        "abs_url": f"https://arxiv.org/abs/2405.{number:05d}",
        "doi": None,
    }
    return SimpleNamespace(**{**values, **fields})


TRICKY = [
    library_paper(1, title="Masked Autoencoders Are Scalable Vision Learners"),
    library_paper(2, title="Masked Autoencoders Are Scalable Vision Learners, again"),
    library_paper(3, title="R&D at 100% for #1: the_best $\\alpha_1$ and 2^n {BERT}",
                  authors=["Jürgen Schmidhuber", "Smith and Sons Lab", "Doe, Jr., John"],
                  doi="10.1000/x_y"),
    library_paper(4, title="An unbalanced { brace and a $5 bill", authors=[]),
    library_paper(5, arxiv_id="hep-th/9901001", title="Old style", primary_category="hep-th"),
]  # fmt: skip


def test_the_library_as_bibtex_reads_back_with_the_same_ids_titles_and_authors():
    text = library_bibtex(TRICKY)
    library = bibtexparser.parse_string(text)
    assert library.failed_blocks == []
    entries = library.entries
    assert [e["eprint"] for e in entries] == [p.arxiv_id for p in TRICKY]
    assert [e.key for e in entries] == [
        "he2024masked", "he2024maskedb", "schmidhuber2024rd", "arxiv240500004", "he2024old",
    ]  # fmt: skip
    assert {e["archivePrefix"] for e in entries} == {"arXiv"}
    assert entries[4]["primaryClass"] == "hep-th" and entries[0]["year"] == "2024"
    assert entries[2]["doi"] == "10.1000/x_y" and "doi" not in entries[0].fields_dict
    assert entries[2]["url"] == "https://arxiv.org/abs/2405.00003"
    for entry, source in zip(entries, TRICKY, strict=True):
        assert entry["title"] == bibtex_text(source.title)
    assert entries[0]["title"] == TRICKY[0].title
    assert entries[2]["title"] == (
        "R\\&D at 100\\% for \\#1: the\\_best $\\alpha_1$ and 2\\^{}n {BERT}"
    )
    assert entries[3]["title"] == "An unbalanced \\textbraceleft{} brace and a \\$5 bill"
    assert entries[2]["author"] == (
        "Jürgen Schmidhuber and {Smith and Sons Lab} and {Doe, Jr., John}"
    )
    # LaTeX decoded, the specials are the title's own characters again.
    decoded = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    assert decoded.entries[2]["title"].startswith("R&D at 100% for #1: the_best")


def test_an_exported_library_seeds_the_same_papers(settings, cli, arxiv, tmp_path):
    """The library's BibTeX is itself a seed file: every entry matched by its eprint."""
    store_papers(settings, "SLAM", paper(1), paper(2), paper(3))
    with session_scope(settings) as session:
        reader = store.get_subscriber(session, ADA).id
        for day, arxiv_id in ((1, "2611.00002"), (2, "2611.00003")):
            paper_id = store.paper_by_arxiv_id(session, arxiv_id).id
            store.save_paper(session, reader, paper_id, datetime(2026, 11, day, tzinfo=UTC))
    exported = cli("subscribers", "library", ADA, "--bibtex").output
    seeds, problems = seeds_from_bibtex(exported, "ada.bib")
    assert problems == [] and [s.arxiv_id for s in seeds] == ["2611.00003", "2611.00002"]
    table = cli("subscribers", "library", ADA).output
    assert table.index("2611.00003") < table.index("2611.00002") and "2 saved paper(s)" in table
    path = Path(tmp_path / "ada.bib")
    path.write_text(exported, encoding="utf-8")
    cli("subscribers", "add", "bo@example.org", "--topic", "SLAM")
    result = cli("subscribers", "seed", "bo@example.org", "--bibtex", str(path))
    assert "2 matched; 2 new seed(s)" in result.output and arxiv.requests == []
