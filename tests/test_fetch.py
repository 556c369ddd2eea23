"""Fetching: `newsletter fetch`, `fetch.fetch` and `newsletter topics test` against a local arXiv.

Every test talks to a real HTTP server on loopback (tests/arxiv_server.py) serving bytes arXiv
actually sent (../shared/fixtures/arxiv, skipped where absent) or this project's own feeds,
and checks what landed in the database through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from newsletter.config import Settings, get_settings
from newsletter.daily import fetch
from newsletter.db import session_scope
from newsletter.models import Paper, Topic, TopicPaper
from newsletter.sources.arxiv_query import build_query
from tests.arxiv_server import ArxivServer, Reply, local_fixture, refused_url, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import Cli, paper, set_env, topic_id, write_locked


@pytest.fixture
def arxiv(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArxivServer]:
    """A local arXiv the settings point at, with retries fast enough for tests."""
    with ArxivServer() as server:
        set_env(monkeypatch, arxiv_api_url=server.url, arxiv_backoff="0.01")
        yield server


def add_topic(cli: Cli, name: str, keyword: str | None = None) -> str:
    """Add a topic the way a user would; returns the arXiv query it runs."""
    keyword = keyword or name.lower()
    cli("topics", "add", name, "--keyword", keyword)
    return build_query((keyword,), (), (), None)


def stored_papers(settings: Settings) -> dict[str, Paper]:
    with session_scope(settings) as session:
        return {paper.arxiv_id: paper for paper in session.scalars(select(Paper))}


def stored_links(settings: Settings) -> set[tuple[str, str]]:
    """(topic name, arXiv id) for every paper a topic matched."""
    query = (
        select(Topic.name, Paper.arxiv_id)
        .join(TopicPaper, TopicPaper.topic_id == Topic.id)
        .join(Paper, Paper.id == TopicPaper.paper_id)
    )
    with session_scope(settings) as session:
        return {(name, arxiv_id) for name, arxiv_id in session.execute(query)}


def counts(settings: Settings) -> tuple[int, int]:
    """How many papers are stored, and how many links from a topic to a paper."""
    with session_scope(settings) as session:
        papers = session.scalar(select(func.count()).select_from(Paper))
        links = session.scalar(select(func.count()).select_from(TopicPaper))
        return papers, links


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error: ")]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def serve_mllm_pages(server: ArxivServer, **params: object) -> None:
    """The project's two-page feed (7 papers, 4 + 3), answered by `start`."""
    server.serve(local_fixture("mllm_start0_4.xml"), start=0, **params)
    server.serve(local_fixture("mllm_start4_4.xml"), start=4, **params)


MLLM_IDS = [f"2605.1000{n}" for n in range(7, 0, -1)]  # newest first, as arXiv sorts them

ROBOTS = [
    Entry("2605.10002", "MLLMs for Robots", published="2026-05-11T06:00:00Z"),
    Entry("2611.00001", "Robots without language"),
]


# --------------------------------------------------------------------------- what is stored


def test_real_papers_are_stored_once_with_every_field(cli, arxiv, settings, monkeypatch):
    page = shared_fixture("current/versions-doi-journalref_3.xml")
    # The feed's totalResults is 1,242,010: the per-topic cap is what ends the paging.
    settings = set_env(monkeypatch, fetch_max_per_topic="3")
    proteins = add_topic(cli, "Proteins", "protein")
    language = add_topic(cli, "Language", "language model")
    arxiv.serve(page, search_query=proteins)
    arxiv.serve(page, search_query=language)
    before = datetime.now(UTC)

    cli("fetch")

    after = datetime.now(UTC)
    papers = stored_papers(settings)
    assert sorted(papers) == ["2201.07338", "2207.07410", "2410.08355"]  # no version in the key
    assert stored_links(settings) == {
        (topic, arxiv_id) for topic in ("Proteins", "Language") for arxiv_id in papers
    }
    assert len(arxiv.requests) == 2

    metalic = papers["2410.08355"]
    assert metalic.version == 3
    assert metalic.title == "Metalic: Meta-Learning In-Context with Protein Language Models"
    assert metalic.abstract.startswith("Predicting the biophysical and functional properties")
    assert metalic.abstract.endswith("will play a pivotal role in advancing protein engineering.")
    assert metalic.authors == [
        "Jacob Beck",
        "Shikha Surana",
        "Manus McAuliffe",
        "Oliver Bent",
        "Thomas D. Barrett",
        "Juan Jose Garau Luis",
        "Paul Duckworth",
    ]
    assert (metalic.categories, metalic.primary_category) == (["cs.LG"], "cs.LG")
    assert metalic.published == utc("2024-10-10T20:19:35")
    assert metalic.updated == utc("2025-07-15T22:56:19")
    assert metalic.comment.startswith("Published at The Thirteenth International Conference")
    assert metalic.journal_ref == (
        "The Thirteenth International Conference on Learning Representations (ICLR 2025)"
    )
    assert metalic.doi is None
    assert metalic.abs_url == "https://arxiv.org/abs/2410.08355"
    assert metalic.pdf_url == "https://arxiv.org/pdf/2410.08355v3"
    assert metalic.code_urls == ["https://github.com/instadeepai/metalic"]  # from the comment
    assert before <= metalic.first_seen_at <= after

    knots = papers["2207.07410"]
    assert knots.version == 1 and knots.doi == "10.1002/pro.4380"
    assert knots.categories == ["q-bio.BM", "cond-mat.soft", "physics.bio-ph"]
    assert knots.primary_category == "q-bio.BM"
    assert knots.journal_ref == "Protein Science. 2022; 31( 8):e4380"
    assert knots.code_urls == []
    design = papers["2201.07338"]
    assert (design.version, design.doi) == (2, "10.1038/s42256-022-00499-z")
    assert design.authors == ["Noelia Ferruz", "Birte Höcker"]
    assert design.published == utc("2022-01-18T22:23:03")
    assert design.updated == utc("2022-08-22T18:44:27")


def test_project_feeds_are_stored_with_every_field(cli, arxiv, settings):
    serve_mllm_pages(arxiv, search_query=add_topic(cli, "MLLM"))
    before = datetime.now(UTC)

    result = cli("fetch")

    papers = stored_papers(settings)
    assert sorted(papers, reverse=True) == MLLM_IDS
    assert arxiv.starts() == [0, 4]
    assert "MLLM" in result.output and not error_lines(result.output)

    pangu = papers["2605.10006"]
    assert pangu.version == 2
    assert pangu.title.startswith("PanGu-$π$: Enhancing")  # stored as arXiv gave it
    assert pangu.authors == [
        "Yunhe Wang",
        "Hanting Chen",
        "Yehui Tang",
        "Tianyu Guo",
        "Kai Han",
        "Zoë Ø. Ðorđević",
    ]
    assert (pangu.categories, pangu.primary_category) == (["cs.CL", "cs.LG"], "cs.CL")
    assert pangu.published == utc("2026-05-11T09:30:00")
    assert pangu.updated == utc("2026-05-13T12:00:00")
    assert pangu.comment is None and pangu.journal_ref is None and pangu.doi is None
    assert pangu.code_urls == [  # from the abstract
        "https://huggingface.co/example-lab/pangu-pi",
        "https://huggingface.co/spaces/example-lab/pangu-pi-demo",
    ]
    assert pangu.abs_url == "https://arxiv.org/abs/2605.10006"
    assert pangu.pdf_url == "https://arxiv.org/pdf/2605.10006v2"
    assert pangu.first_seen_at >= before

    grounding = papers["2605.10005"]
    assert grounding.comment == "Accepted at CVPR 2026"
    assert grounding.journal_ref == "Proceedings of CVPR 2026"
    assert grounding.doi == "10.1109/CVPR.2026.00042"
    assert grounding.authors == ["Grace Hopper", "Alan Turing"]

    hostile = papers["2605.10007"]
    assert hostile.title.startswith("<script>alert(1)</script> Tokens & Pixels")
    assert hostile.code_urls == ["https://github.com/example-lab/mllm-hardening"]
    assert papers["2605.10003"].version == 3


def test_a_paper_two_topics_match_is_one_row_with_two_links(cli, arxiv, settings):
    serve_mllm_pages(arxiv, search_query=add_topic(cli, "MLLM"))
    arxiv.route(Reply(body=feed(ROBOTS)), search_query=add_topic(cli, "Robots"))

    report = fetch.fetch(get_settings())

    assert report.ok and report.errors == []
    assert [(t.topic, t.fetched, t.new_papers, t.new_links) for t in report.topics] == [
        ("MLLM", 7, 7, 7),
        ("Robots", 2, 1, 2),  # 2605.10002 was stored by MLLM already
    ]
    assert len(stored_papers(settings)) == 8
    with session_scope(settings) as session:
        rows = session.scalar(
            select(func.count()).select_from(Paper).where(Paper.arxiv_id == "2605.10002")
        )
    assert rows == 1
    links = stored_links(settings)
    assert {("MLLM", "2605.10002"), ("Robots", "2605.10002")} <= links
    assert len(links) == 9


def test_fetch_can_be_limited_to_named_topics(cli, arxiv, settings):
    serve_mllm_pages(arxiv, search_query=add_topic(cli, "MLLM"))
    robots = add_topic(cli, "Robots")
    arxiv.route(Reply(body=feed(ROBOTS)), search_query=robots)

    cli("fetch", "--topic", "robots")

    assert {request.search_query for request in arxiv.requests} == {robots}
    assert sorted(stored_papers(settings)) == ["2605.10002", "2611.00001"]
    unknown = cli("fetch", "--topic", "Nope", ok=False)
    assert unknown.exit_code == 1 and "unknown topic 'Nope'" in unknown.output


# --------------------------------------------------------------------------- one bad entry


def test_an_entry_that_is_not_a_paper_is_left_out_and_said(cli, arxiv, settings):
    entries = [
        Entry("2611.00001", "Good"),
        Entry("notanid", "Not an arXiv id"),
        Entry("2611.00002", "Control\x9f characters\x85here", abstract="C1\x80 text"),
    ]
    arxiv.route(Reply(body=feed(entries)), search_query=add_topic(cli, "Robots"))

    result = cli("fetch")

    papers = stored_papers(settings)
    assert sorted(papers) == ["2611.00001", "2611.00002"]
    assert papers["2611.00002"].title == "Control characters here"
    assert papers["2611.00002"].abstract == "C1 text"
    assert "Warning: topic 'Robots': left out" in result.output
    assert "not an arXiv identifier: 'notanidv1'" in result.output
    assert result.exit_code == 0  # the topic was fetched; one entry was not a paper


def test_a_paper_the_database_refuses_is_reported_and_the_others_kept(cli, settings):
    add_topic(cli, "Robots")
    broken = replace(paper(2), published=None)  # NOT NULL on both databases

    saved = fetch.save_fetched(settings, topic_id(settings, "Robots"), [paper(1), broken, paper(3)])

    assert (saved.new_papers, saved.new_links) == (2, 2)
    (reason,) = saved.rejected
    assert reason.startswith("2611.00002: not stored: ") and "INSERT" not in reason
    assert sorted(stored_papers(settings)) == ["2611.00001", "2611.00003"]


def test_a_locked_database_stores_no_paper_rather_than_rejecting_each(cli, settings):
    # Each paper "not stored" while the topic counted as fetched lost them from the digest:
    # a lock is the database's failure, which the worker waits out and fetches again.
    from sqlalchemy.exc import OperationalError

    from newsletter.db import lock_timeout

    add_topic(cli, "Robots")
    robots = topic_id(settings, "Robots")

    with write_locked(settings, at_most=30, table="papers"), lock_timeout(1.0):
        with pytest.raises(OperationalError):
            fetch.save_fetched(settings, robots, [paper(1), paper(2)])

    assert stored_papers(settings) == {}
    saved = fetch.save_fetched(settings, robots, [paper(1), paper(2)])
    assert (saved.new_papers, saved.rejected) == (2, [])


def test_an_unexpected_failure_on_one_topic_stops_no_other(cli, arxiv, settings):
    # A topic whose query arXiv answers with a feed the parser cannot read as a paper list.
    arxiv.route(Reply(body=feed(ROBOTS)), search_query=add_topic(cli, "Robots"))
    arxiv.route(
        Reply(body=feed([Entry("2611.00009", "Odd date", published="not a date")])),
        search_query=add_topic(cli, "Odd"),
    )

    result = cli("fetch", ok=False)

    assert result.exit_code == 1
    assert {name for name, _ in stored_links(settings)} == {"Robots"}
    (line,) = error_lines(result.output)
    assert line.startswith("Error: topic 'Odd': ")


# --------------------------------------------------------------------------- twice, and newer


def test_fetching_twice_stores_nothing_twice_and_costs_one_request_per_topic(
    cli, arxiv, settings, monkeypatch
):
    settings = set_env(monkeypatch, arxiv_page_size="6")
    entries = [Entry(f"2611.{n:05d}", f"Paper {n}") for n in range(12, 0, -1)]
    alpha = add_topic(cli, "Alpha")
    arxiv.route(Reply(body=feed(entries[:6], total=12)), search_query=alpha, start=0)
    arxiv.route(Reply(body=feed(entries[6:], total=12, start=6)), search_query=alpha, start=6)
    arxiv.route(Reply(body=feed(entries[:2])), search_query=add_topic(cli, "Beta"))

    cli("fetch")
    first = counts(settings)
    first_requests = len(arxiv.requests)
    again = cli("fetch")

    assert first == (12, 14)
    assert first_requests == 3  # Alpha's two pages, Beta's one
    assert counts(settings) == first
    # Paging stops at the known papers: Alpha's second page is not asked for again.
    assert [r.start for r in arxiv.requests[first_requests:]] == [0, 0]
    assert len(arxiv.requests) - first_requests == 2
    assert not error_lines(again.output)


def test_a_newer_version_updates_the_stored_paper(cli, arxiv, settings):
    query = add_topic(cli, "Alpha")
    arxiv.route(Reply(body=feed([Entry("2611.00001", "A first draft")])), search_query=query)
    cli("fetch")
    first_seen = stored_papers(settings)["2611.00001"].first_seen_at

    revised = Entry("2611.00001", "A much better title", version=2, abstract="Now with proofs.")
    arxiv.route_first(Reply(body=feed([revised])), search_query=query)
    cli("fetch")

    paper = stored_papers(settings)["2611.00001"]
    assert (paper.version, paper.title, paper.abstract) == (
        2,
        "A much better title",
        "Now with proofs.",
    )
    assert paper.pdf_url == "https://arxiv.org/pdf/2611.00001v2"
    assert paper.first_seen_at == first_seen
    assert counts(settings) == (1, 1)


def test_an_older_version_does_not_overwrite_a_newer_one(cli, arxiv, settings):
    query = add_topic(cli, "Alpha")
    arxiv.route(Reply(body=feed([Entry("2611.00001", "Second", version=2)])), search_query=query)
    cli("fetch")
    arxiv.route_first(Reply(body=feed([Entry("2611.00001", "First")])), search_query=query)
    cli("fetch")

    paper = stored_papers(settings)["2611.00001"]
    assert (paper.version, paper.title) == (2, "Second")


# --------------------------------------------------------------------------- paging


def test_pages_are_requested_newest_first_up_to_the_cap(cli, arxiv, settings, monkeypatch):
    settings = set_env(monkeypatch, arxiv_page_size="4", fetch_max_per_topic="6")
    serve_mllm_pages(arxiv, search_query=add_topic(cli, "MLLM"))

    cli("fetch")

    assert arxiv.starts() == [0, 4]
    assert [r.max_results for r in arxiv.requests] == [4, 4]
    for request in arxiv.requests:
        assert request.params["sortBy"] == "submittedDate"
        assert request.params["sortOrder"] == "descending"
    assert sorted(stored_papers(settings), reverse=True) == MLLM_IDS[:6]  # the cap holds


def test_paging_over_real_consecutive_pages(cli, arxiv, settings, monkeypatch):
    pages = [shared_fixture(f"current/all-testing_start{s}_10.xml") for s in (0, 10, 20)]
    settings = set_env(monkeypatch, arxiv_page_size="10", fetch_max_per_topic="25")
    add_topic(cli, "Testing")
    for start, page in zip((0, 10, 20), pages, strict=True):
        arxiv.serve(page, start=start)

    cli("fetch")

    assert arxiv.starts() == [0, 10, 20]
    assert {r.params["sortBy"] for r in arxiv.requests} == {"submittedDate"}
    assert {r.params["sortOrder"] for r in arxiv.requests} == {"descending"}
    papers = stored_papers(settings)
    assert len(papers) == 25
    assert "2109.07960" in papers  # the 25th
    assert "2409.05654" not in papers  # the 26th, beyond the cap
    assert papers["2204.08348"].version == 3


# --------------------------------------------------------------------------- failures

FailureCase = tuple[Callable[[], Reply], tuple[str, ...]]

ERROR_FEED = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    '<feed xmlns="http://www.w3.org/2005/Atom"'
    ' xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
    "<id>https://arxiv.org/</id><title>arXiv Search Results</title>"
    "<opensearch:totalResults>1</opensearch:totalResults>"
    "<entry><id>https://arxiv.org/api/errors#max_results_must_be_less_than_30000</id>"
    "<title>Error</title><summary>max_results must be less than 30000</summary>"
    "<author><name>arXiv api core</name></author></entry></feed>\n"
)
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>\n"
)

FAILURES: dict[str, FailureCase] = {
    "http503-real": (
        lambda: Reply.file(shared_fixture("errors/http503.html"), status=503),
        ("HTTP 503", "'503'", "gave up after 2 attempts"),
    ),
    "http503": (
        lambda: Reply.text(HTML_PAGE, status=503, content_type="text/html"),
        ("HTTP 503", "'Service Unavailable'", "gave up after 2 attempts"),
    ),
    "rate-exceeded-real": (
        lambda: Reply.file(shared_fixture("errors/rate-exceeded.txt"), status=503),
        ("Rate exceeded.", "HTTP 503"),
    ),
    "rate-exceeded": (
        lambda: Reply.text("Rate exceeded.", status=200),
        ("Rate exceeded.", "HTTP 200"),
    ),
    "html-200-real": (
        lambda: Reply.file(shared_fixture("errors/http503.html"), status=200),
        ("HTML page instead of an Atom feed", "HTTP 200"),
    ),
    "html-200": (
        lambda: Reply.text(HTML_PAGE, status=200, content_type="text/html"),
        ("HTML page instead of an Atom feed", "'Service Unavailable'"),
    ),
    "error-feed-400-real": (
        lambda: Reply.file(shared_fixture("errors/http400_error-entry_incorrect-id.xml"), 400),
        ("arXiv rejected the query", "incorrect id format for abc", "HTTP 400"),
    ),
    "error-feed-400": (
        lambda: Reply(status=400, body=ERROR_FEED.encode()),
        ("arXiv rejected the query", "max_results must be less than 30000", "HTTP 400"),
    ),
    "timeout": (
        lambda: Reply(body=feed([Entry("2611.00666", "Too late")]), delay=3.0),
        ("no answer within 0.5 s",),
    ),
}

GOOD_BEFORE = [Entry("2611.00001", "Good one")]
GOOD_TODAY = [Entry("2611.00002", "Good two", published="2026-11-27T17:00:00Z"), *GOOD_BEFORE]
BAD_BEFORE = [Entry("2611.00101", "Bad one"), Entry("2611.00102", "Bad two")]


@pytest.fixture
def two_topics(cli, arxiv, settings, monkeypatch) -> tuple[str, str]:
    """Two topics fetched once successfully; returns the queries of (Bad, Good).

    Bad comes first, so a failure there must not stop Good from being fetched after it.
    """
    set_env(monkeypatch, arxiv_timeout="0.5")
    bad = add_topic(cli, "Bad")
    good = add_topic(cli, "Good")
    arxiv.route(Reply(body=feed(BAD_BEFORE)), search_query=bad)
    arxiv.route(Reply(body=feed(GOOD_BEFORE)), search_query=good)
    cli("fetch")
    assert counts(settings) == (3, 3)
    return bad, good


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failing_topic_is_reported_and_stops_no_other(cli, arxiv, settings, two_topics, case):
    make_reply, said = FAILURES[case]
    reply = make_reply()
    bad, good = two_topics
    arxiv.route_first(reply, search_query=bad)
    arxiv.route_first(Reply(body=feed(GOOD_TODAY)), search_query=good)

    result = cli("fetch", ok=False)

    assert result.exit_code == 1
    (line,) = error_lines(result.output)  # only the failing topic has a problem
    assert line.startswith("Error: topic 'Bad': ")
    for words in said:
        assert words in line
    assert arxiv.url in line
    links = stored_links(settings)
    assert ("Good", "2611.00002") in links  # the other topic was fetched after the failure
    assert {("Bad", "2611.00101"), ("Bad", "2611.00102"), ("Good", "2611.00001")} <= links
    assert counts(settings) == (4, 4)  # nothing stored before was lost
    assert "2611.00666" not in stored_papers(settings)


def test_connection_refused_fails_every_topic_clearly(cli, settings, two_topics, monkeypatch):
    url = refused_url()
    settings = set_env(monkeypatch, arxiv_api_url=url)

    result = cli("fetch", ok=False)

    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert [line.split(":")[1].strip() for line in lines] == ["topic 'Bad'", "topic 'Good'"]
    for line in lines:
        assert "could not reach arXiv" in line and "refused" in line.lower()
        assert url in line and "gave up after 2 attempts" in line
    assert counts(settings) == (3, 3)


@pytest.mark.parametrize("real", [False, True], ids=["project-page", "real-pages"])
def test_a_failure_on_page_two_keeps_page_one(cli, arxiv, settings, monkeypatch, real):
    if real:
        first = Reply.file(shared_fixture("current/all-testing_start0_10.xml"))
        broken = Reply.file(shared_fixture("errors/http503.html"), status=503)
        size, expected = 10, 10
    else:
        first = Reply.file(local_fixture("mllm_start0_4.xml"))
        broken = Reply.text(HTML_PAGE, status=503, content_type="text/html")
        size, expected = 4, 4
    settings = set_env(monkeypatch, arxiv_page_size=str(size))
    query = add_topic(cli, "Paged")
    arxiv.route(first, search_query=query, start=0)
    arxiv.route(broken, search_query=query, start=size)
    arxiv.route(Reply(body=feed(ROBOTS)), search_query=add_topic(cli, "Robots"))

    result = cli("fetch", ok=False)

    assert result.exit_code == 1
    (line,) = error_lines(result.output)
    assert line.startswith("Error: topic 'Paged': ") and "HTTP 503" in line
    assert f"start={size}" in line
    links = stored_links(settings)
    assert sum(1 for topic, _ in links if topic == "Paged") == expected
    assert sum(1 for topic, _ in links if topic == "Robots") == 2
    row = next(line for line in result.output.splitlines() if line.startswith("│ Paged "))
    fetched, new_papers, new_links = (cell.strip() for cell in row.split("│")[2:5])
    assert (fetched, new_papers, new_links) == (str(expected),) * 3


def test_the_pages_a_failed_fetch_missed_are_read_next_time(cli, arxiv, settings, monkeypatch):
    """Page 1 is stored, page 2 fails: the next fetch must not stop at page 1's (now known)
    papers, or page 2's would never be read; once complete, fetching stops early again."""
    settings = set_env(monkeypatch, arxiv_page_size="6")
    entries = [Entry(f"2611.{n:05d}", f"Paper {n}") for n in range(12, 0, -1)]
    query = add_topic(cli, "Alpha")
    arxiv.route(Reply(body=feed(entries[:6], total=12)), search_query=query, start=0)
    second_page = Reply(body=feed(entries[6:], total=12, start=6))
    arxiv.route(Reply.text(HTML_PAGE, status=503, content_type="text/html"), start=6)

    assert cli("fetch", ok=False).exit_code == 1
    assert counts(settings) == (6, 6)
    with session_scope(settings) as session:
        assert session.scalar(select(Topic.fetch_incomplete))

    arxiv.route_first(second_page, search_query=query, start=6)
    arxiv.requests.clear()
    cli("fetch")
    assert arxiv.starts() == [0, 6]
    assert counts(settings) == (12, 12)
    with session_scope(settings) as session:
        assert not session.scalar(select(Topic.fetch_incomplete))

    arxiv.requests.clear()
    cli("fetch")
    assert arxiv.starts() == [0]  # complete again: page 1's known papers end it

    # arXiv down from the first request: nothing can be missing behind known papers.
    arxiv.route_first(Reply.text(HTML_PAGE, status=503, content_type="text/html"))
    assert cli("fetch", ok=False).exit_code == 1
    with session_scope(settings) as session:
        assert not session.scalar(select(Topic.fetch_incomplete))


# --------------------------------------------------------------------------- topics test


def test_topics_test_shows_count_and_readable_titles_and_stores_nothing(cli, arxiv, settings):
    serve_mllm_pages(arxiv, search_query=add_topic(cli, "MLLM"))

    result = cli("topics", "test", "MLLM")

    assert "7 papers on arXiv match MLLM" in result.output
    assert "PanGu-π: Enhancing Language Model Architectures" in result.output
    assert "$π$" not in result.output
    assert "<script>alert(1)</script> Tokens & Pixels" in result.output  # text, shown as text
    assert "2605.10001" in result.output and "Old Tricks for New MLLMs" in result.output
    assert counts(settings) == (0, 0)

    arxiv.requests.clear()
    shorter = cli("topics", "test", "MLLM", "--limit", "2")
    assert len(arxiv.requests) == 1 and arxiv.requests[0].max_results == 2
    titles = [line for line in shorter.output.splitlines() if "2605.100" in line]
    assert len(titles) == 2 and "PanGu-π" in titles[1]
    assert counts(settings) == (0, 0)


def test_topics_test_reports_arxiv_failures(cli, arxiv, settings):
    arxiv.route(Reply.text("Rate exceeded.", status=503), search_query=add_topic(cli, "MLLM"))

    result = cli("topics", "test", "MLLM", ok=False)

    assert result.exit_code == 8  # a web service the command cannot do without (README)
    assert "Rate exceeded." in result.output and arxiv.url in result.output
    assert counts(settings) == (0, 0)


def test_a_page_arxiv_repeats_is_kept_once_and_stops_paging(cli, arxiv, settings, monkeypatch):
    set_env(monkeypatch, arxiv_page_size="5", fetch_max_per_topic="50")
    query = add_topic(cli, "Echo")
    page = [Entry(f"2611.{n:05d}", f"Echo {n}") for n in range(1, 6)]
    arxiv.route(Reply(body=feed(page, total=40)), search_query=query)  # every page the same

    result = cli("fetch")

    assert arxiv.starts() == [0, 5]  # the repeated page is all known: no third request
    row = next(line for line in result.output.splitlines() if "Echo" in line)
    assert row.split("│")[2].strip() == "5"  # fetched: five distinct papers, not ten
    assert counts(settings) == (5, 5)
