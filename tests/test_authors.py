"""Author names (`newsletter.authors`): the folded key of a follow, and matching follows against
real author lists arXiv sent (../shared/fixtures/arxiv: accents, initials, particles)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from newsletter.authors import FollowIndex, follow_key, follows_author
from newsletter.errors import InvalidInput
from tests.arxiv_server import shared_fixture

ATOM = "{http://www.w3.org/2005/Atom}"


def author_lists(path: Path) -> list[tuple[str, list[str]]]:
    """(entry id, its authors as arXiv wrote them) for every entry of a real response."""
    root = etree.parse(str(path)).getroot()
    return [
        (
            re.sub(r"v\d+$", "", entry.findtext(f"{ATOM}id").split("/abs/")[1]),
            [author.findtext(f"{ATOM}name") for author in entry.iterfind(f"{ATOM}author")],
        )
        for entry in root.iterfind(f"{ATOM}entry")
    ]


def real_papers() -> list[tuple[str, list[str]]]:
    papers = []
    for name in (
        "current/all-testing_start0_100.xml",
        "current/cs-ai-lg-cl_2026-05-12_25.xml",
        "current/cs-ai-lg-cl_2026-07-30_25.xml",
        "current/entity-in-title_2.xml",
        "legacy/au-del-maestro_10.xml",
        "legacy/deep-dream_start0_10.xml",
        "legacy/deep-dream_start10_10.xml",
    ):
        papers += author_lists(shared_fixture(name))
    return papers


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("Kaiming He", "kaiming he"),
        ("He, Kaiming", "kaiming he"),
        ("  KAIMING   he ", "kaiming he"),
        ("K. He", "k he"),
        ("K He", "k he"),
        ("José Raúl Romero", "jose raul romero"),
        ("Romero, José Raúl", "jose raul romero"),
        ("Søren Hauberg", "soren hauberg"),
        ("Adrian Del Maestro", "adrian del_maestro"),
        ("Del Maestro, Adrian", "adrian del_maestro"),
        ("Antal van den Bosch", "antal van_den_bosch"),
        ("Vânia de Oliveira Neves", "vania de_oliveira_neves"),
        ("Garau Luis, Juan Jose", "juan jose garau_luis"),
        ("Jean-Pierre Serre", "jean-pierre serre"),
        ("Jean – Pierre Serre", "jean-pierre serre"),
        ("J.-P. Serre", "j-p serre"),
        ("J.P. Serre", "j p serre"),
        ("Kevin Taylor-Sakyi", "kevin taylor-sakyi"),
        ("John W. Fisher III", "john w fisher"),
        ("Fisher, John W., Jr.", "john w fisher"),
        ("Sean O’Brien", "sean o'brien"),
    ],
)
def test_follow_key_folds_every_spelling_of_a_name(written, key):
    assert follow_key(written) == key
    assert follow_key(key) == key  # a stored key reads back as itself


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("He", "surname alone"),
        ("He,", "surname alone"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 101, "over 100 characters"),
        ("Kaiming He 2", "holds what no name does ('2')"),
        ('Kaiming "He" OR au:x', "holds what no name does"),
        ("Kaiming\x00He", "holds what no name does"),
        ("He, Kaiming, Xinlei, Chen", "too many commas"),
        ("A B C D E F G H I", "more than 8 words"),
    ],
)
def test_names_that_cannot_be_followed_are_refused_saying_why(written, reason):
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        follow_key(written)


@given(st.text(alphabet="AaBbÉéKkØø .,-'", max_size=30))
def test_a_key_is_its_own_key(text):
    try:
        key = follow_key(text)
    except InvalidInput:
        return
    assert follow_key(key) == key


@pytest.mark.parametrize(
    ("follow", "authors", "matches"),
    [
        ("Kaiming He", ["Xinlei Chen", "Kaiming He"], True),
        ("He, Kaiming", ["Xinlei Chen", "Kaiming He"], True),
        ("kaiming HE", ["KAIMING HE"], True),
        ("Kaiming He", ["Xinlei Chen", "K. He"], True),  # the only K. He of the paper
        ("K. He", ["Kaiming He", "Ross Girshick"], True),
        ("Kaiming He", ["Kun He"], False),  # full first names differ
        ("Kaiming He", ["Kaiming Ho"], False),
        ("K. He", ["Kaiming He", "Kun He"], False),  # which K. He?
        ("Kaiming He", ["K. He", "Kun He"], False),  # K. He may be Kun
        ("Kaiming He", ["Kaiming He", "Kun He"], True),  # a full match is never ambiguous
        ("Kaiming He", ["K. He", "K. He"], True),  # the same author listed twice
        ("Kaiming He", ["K. He", "X. He"], True),
        ("Jose Raul Romero", ["José Raúl Romero"], True),
        ("José Raúl Romero", ["Jose R. Romero"], True),
        ("Geoffrey Hinton", ["Geoffrey E. Hinton"], True),
        ("Geoffrey E. Hinton", ["Geoffrey Hinton"], True),
        ("Michel J. Gingras", ["Michel P. Gingras"], False),
        ("Michel J. P. Gingras", ["M. Gingras"], True),
        ("Jean-Pierre Serre", ["J.-P. Serre"], True),
        ("Jean-Pierre Serre", ["J. P. Serre"], True),
        ("Jean-Pierre Serre", ["Jean Pierre Serre"], True),
        ("Jean-Pierre Serre", ["J. Serre"], True),
        ("Jean-Pierre Serre", ["Jean Serre"], False),  # Jean is not Jean-Pierre
        ("J.-P. Serre", ["Jean-Pierre Serre"], True),
        ("Adrian Del Maestro", ["A. Del Maestro", "C. M. Herdman"], True),
        ("Adrian Del Maestro", ["Adrian DelMaestro"], True),
        ("Kevin Taylor-Sakyi", ["Kevin Taylor Sakyi"], True),
        ("Juan Jose Garau Luis", ["Juan Jose Garau Luis"], True),
        ("Garau Luis, Juan Jose", ["Juan Jose Garau Luis"], True),
        ("John W. Fisher III", ["John W. Fisher III"], True),
        # "Del Maestro" reads as Del (a first name: Le Song's Le is one) Maestro: no Adrian.
        ("Del Maestro", ["Adrian Del Maestro", "A. Del Maestro"], False),
        ("Kaiming He", ["He"], False),  # an author without a first name matches no one
        ("Xinlei Chen", ["Kaiming He", "Xinlei Chen He"], False),
    ],
)
def test_a_follow_matches_only_the_authors_it_names(follow, authors, matches):
    assert follows_author(follow, authors) is matches


def test_every_real_author_is_found_on_their_paper_however_written():
    papers = real_papers()
    index = FollowIndex(papers)
    checked = 0
    for arxiv_id, authors in papers:
        for author in authors:
            words = author.split()
            if len(words) < 2 or len(words) > 8:
                continue
            variants = [author, author.upper(), f"{words[-1]}, {' '.join(words[:-1])}"]
            for variant in variants:
                try:
                    key = follow_key(variant)
                except InvalidInput:
                    continue
                assert arxiv_id in index.papers_for([key]), (variant, arxiv_id)
                checked += 1
    assert checked > 1_500


def test_accents_typed_without_them_still_match_real_authors():
    index = FollowIndex(real_papers())
    accented = {
        "Jose Raul Romero": "José Raúl Romero",
        "Soren Hauberg": "Søren Hauberg",
        "Mika V. Mantyla": "Mika V. Mäntylä",
        "Sebastien Lafond": "Sébastien Lafond",
        "Codrut-Andrei Diaconu": "Codruţ-Andrei Diaconu",
    }
    for typed, real in accented.items():
        found = index.papers_for([follow_key(typed)])
        expected = [arxiv_id for arxiv_id, authors in real_papers() if real in authors]
        assert found == expected and expected, typed


def test_a_real_surname_with_another_first_name_matches_nothing():
    papers = real_papers()
    index = FollowIndex(papers)
    for arxiv_id, authors in papers:
        for author in authors:
            words = author.split()
            if len(words) < 2:
                continue
            stranger = follow_key(f"Zyxwv {words[-1]}")
            assert arxiv_id not in index.papers_for([stranger]), author


def test_a_real_au_response_matches_the_person_asked_for_in_both_forms():
    papers = author_lists(shared_fixture("legacy/au-del-maestro_10.xml"))
    index = FollowIndex(papers)
    everyone = [arxiv_id for arxiv_id, _ in papers]
    # arXiv lists him as "Adrian Del Maestro" on 6 papers and "A. Del Maestro" on 4.
    assert index.papers_for([follow_key("Adrian Del Maestro")]) == everyone
    assert index.papers_for([follow_key("Del Maestro, Adrian")]) == everyone
    sachdev = [arxiv_id for arxiv_id, authors in papers if "Subir Sachdev" in authors]
    assert len(sachdev) == 3
    assert index.papers_for([follow_key("S. Sachdev")]) == sachdev
    assert index.papers_for([follow_key("Sam Sachdev")]) == []
    both = index.papers_for([follow_key("Subir Sachdev"), follow_key("Bernd Rosenow")])
    rosenow = [arxiv_id for arxiv_id, authors in papers if "Bernd Rosenow" in authors]
    assert both == [arxiv_id for arxiv_id in everyone if arxiv_id in sachdev + rosenow]


def test_the_index_answers_many_readers_from_its_cache():
    papers = real_papers()
    index = FollowIndex(papers)
    pool = sorted({follow_key(a) for _, authors in papers for a in authors if len(a.split()) > 1})
    readers = [[pool[(reader * 7 + n) % len(pool)] for n in range(5)] for reader in range(10_000)]
    started = time.perf_counter()
    answers = [index.papers_for(keys) for keys in readers]
    elapsed = time.perf_counter() - started
    for keys, answer in zip(readers[:50], answers[:50], strict=True):
        expected = [
            arxiv_id
            for arxiv_id, authors in papers
            if any(follows_author(key, authors) for key in keys)
        ]
        assert answer == expected
    assert all(answers)  # every reader follows real authors of these papers
    assert elapsed < 5, f"10,000 readers took {elapsed:.2f} s"
