"""The store of what readers did with papers: saves, ratings and seeds, each idempotent, and
what the ranking reads of them (positive and negative examples, the counts)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.models import Rating
from tests.helpers import paper, store_papers, subscribe

ADA, BO = "ada@example.org", "bo@example.org"


@pytest.fixture
def ids(settings, cli, example_topics) -> dict[str, int]:
    """Ada and Bo, and papers 1 to 4 (paper 4 with a DOI): their ids by name."""
    subscribe(cli, ADA, "SLAM")
    subscribe(cli, BO, "SLAM")
    store_papers(settings, "SLAM", paper(1), paper(2), paper(3), replace(paper(4), doi="10.1/AbC"))
    with session_scope(settings) as session:
        found = {email: store.get_subscriber(session, email).id for email in (ADA, BO)}
        for number in range(1, 5):
            found[str(number)] = store.paper_by_arxiv_id(session, f"2611.{number:05d}").id
        return found


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def test_every_write_is_idempotent_and_says_whether_it_changed(settings, ids):
    ada, one, two = ids[ADA], ids["1"], ids["2"]
    with session_scope(settings) as session:
        assert store.save_paper(session, ada, one, at(1)) is True
        assert store.save_paper(session, ada, one, at(5)) is False
        assert store.rate_paper(session, ada, two, Rating.more, at(2)) is True
        assert store.rate_paper(session, ada, two, Rating.more, at(3)) is False
        assert store.rate_paper(session, ada, two, Rating.less, at(4)) is True
        assert store.mark_seeds(session, ada, [one, two, two]) == 2
        assert store.mark_seeds(session, ada, [one]) == 0
    with session_scope(settings) as session:
        row = store.reader_paper(session, ada, one)
        assert (row.saved_at, row.rating, row.seed) == (at(1), None, True)
        row = store.reader_paper(session, ada, two)
        assert (row.saved_at, row.rating, row.rated_at) == (None, int(Rating.less), at(4))
        assert store.unsave_paper(session, ada, one) is True
        assert store.unsave_paper(session, ada, one) is False
        assert store.rate_paper(session, ada, two, None) is True
        assert store.rate_paper(session, ada, two, None) is False
        assert store.rate_paper(session, ada, ids["3"], None) is False  # nothing to take back
        assert store.reader_paper(session, ada, ids["3"]) is None
        assert store.reader_paper(session, ids[BO], one) is None


def test_the_library_is_newest_saved_first_and_one_readers_own(settings, ids):
    ada = ids[ADA]
    with session_scope(settings) as session:
        for name, day in (("2", 3), ("1", 1), ("3", 2)):
            store.save_paper(session, ada, ids[name], at(day))
        store.save_paper(session, ids[BO], ids["4"], at(9))
    with session_scope(settings) as session:
        assert [p.arxiv_id for p in store.library_of(session, ada)] == [
            "2611.00002",
            "2611.00003",
            "2611.00001",
        ]
        assert [when for _paper, when in store.saved_papers(session, ada)] == [at(3), at(2), at(1)]
        assert [p.arxiv_id for p in store.library_of(session, ids[BO])] == ["2611.00004"]


def test_positive_and_negative_examples_and_their_counts(settings, ids):
    ada, bo = ids[ADA], ids[BO]
    with session_scope(settings) as session:
        store.save_paper(session, ada, ids["1"])  # saved: positive
        store.rate_paper(session, ada, ids["2"], Rating.more)  # more: positive
        store.mark_seeds(session, ada, [ids["3"]])  # a seed: positive
        store.save_paper(session, ada, ids["4"])  # saved, then "less": negative
        store.rate_paper(session, ada, ids["4"], Rating.less)
        store.rate_paper(session, bo, ids["1"], Rating.less)
    with session_scope(settings) as session:
        assert store.reader_examples(session, ada) == ([ids["1"], ids["2"], ids["3"]], [ids["4"]])
        assert store.reader_examples(session, bo) == ([], [ids["1"]])
        assert store.reader_signal_counts(session) == {ada: 3}
        assert store.reader_signal_counts(session, [bo]) == {}
        assert store.reader_signal_counts(session, []) == {}


def test_papers_are_found_by_doi_whatever_its_case(settings, ids):
    with session_scope(settings) as session:
        found = store.papers_by_dois(session, ["10.1/abc", " 10.1/ABC ", "10.2/none"])
        assert {doi: paper.arxiv_id for doi, paper in found.items()} == {"10.1/abc": "2611.00004"}
        assert store.papers_by_dois(session, []) == {}


def test_two_presses_at_once_record_once(settings, ids):
    """Two requests saving the same paper at the same moment: the second waits for the first's
    row, finds it, and says it was saved already (no error page). PostgreSQL only: SQLite
    writes one transaction at a time."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: no two inserts race there")
    ada, one = ids[ADA], ids["1"]
    second: list[bool] = []
    with session_scope(settings) as first_session:
        assert store.save_paper(first_session, ada, one, at(1)) is True  # not committed yet

        def press_again() -> None:
            with session_scope(settings) as session:
                second.append(store.save_paper(session, ada, one, at(2)))

        racer = threading.Thread(target=press_again)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # its insert waits on the first one's row
    racer.join(10)
    assert second == [False]
    with session_scope(settings) as session:
        assert store.reader_paper(session, ada, one).saved_at == at(1)


def test_purging_a_reader_deletes_what_they_saved_and_rated(settings, cli, ids):
    with session_scope(settings) as session:
        store.save_paper(session, ids[ADA], ids["1"])
        store.rate_paper(session, ids[ADA], ids["2"], Rating.less)
    cli("subscribers", "remove", ADA, "--purge")
    with session_scope(settings) as session:
        assert store.reader_paper(session, ids[ADA], ids["1"]) is None
        assert store.reader_paper(session, ids[ADA], ids["2"]) is None
        assert store.paper_by_arxiv_id(session, "2611.00001") is not None  # the paper stays
