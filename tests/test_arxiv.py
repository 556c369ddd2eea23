"""arxiv_api: queries, parsing real arXiv answers, paging, politeness, and loud failures.

Every test talks to a real HTTP server on loopback (tests/arxiv_server.py) that serves bytes
arXiv actually sent (../shared/fixtures/arxiv) or this project's own feeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import arxiv
import pytest
from arxiv_server import (
    ArxivServer,
    Reply,
    local_fixture,
    refused_url,
    shared_fixture,
)
from lxml import etree

from newsletter.errors import FetchError, InvalidInput
from newsletter.sources.arxiv import (
    ArxivBadResponse,
    ArxivQueryError,
    ArxivRateLimited,
    ArxivSource,
    ArxivUnavailable,
)
from newsletter.sources.arxiv_query import build_query
from newsletter.sources.papers import FetchedPaper

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def server() -> Iterator[ArxivServer]:
    with ArxivServer() as running:
        yield running


def source(server: ArxivServer, **options: float) -> ArxivSource:
    """A source fast enough for tests: no delay, tiny backoff, two retries."""
    settings: dict = {"delay": 0.0, "backoff": 0.01, "retries": 2, "timeout": 5.0}
    settings.update(options)
    return ArxivSource(server.url, **settings)


def serve_local_pages(server: ArxivServer) -> None:
    server.serve(local_fixture("mllm_start0_4.xml"), start=0)
    server.serve(local_fixture("mllm_start4_4.xml"), start=4)


def by_id(papers: list[FetchedPaper]) -> dict[str, FetchedPaper]:
    return {paper.arxiv_id: paper for paper in papers}


# --------------------------------------------------------------------------- build_query


def test_keywords_are_searched_in_title_and_abstract_only() -> None:
    query = build_query(["multimodal large language model", "MLLM"], [], [])

    assert query == (
        '(ti:"multimodal large language model" OR abs:"multimodal large language model"'
        " OR ti:MLLM OR abs:MLLM)"
    )


def test_categories_narrow_and_excludes_remove() -> None:
    query = build_query(["MLLM"], ["cs.CV", "cs.RO"], ["survey", "medical imaging"])

    assert query == (
        "(ti:MLLM OR abs:MLLM) AND (cat:cs.CV OR cat:cs.RO)"
        ' ANDNOT (ti:survey OR abs:survey OR ti:"medical imaging" OR abs:"medical imaging")'
    )


def test_raw_query_is_used_as_written_and_still_narrowed() -> None:
    assert build_query([], [], [], "au:del_maestro AND ti:checkerboard") == (
        "(au:del_maestro AND ti:checkerboard)"
    )
    assert build_query([], ["hep-th"], ["string"], "  all:duality ") == (
        "(all:duality) AND (cat:hep-th) ANDNOT (ti:string OR abs:string)"
    )


def test_raw_query_and_keywords_together_match_either() -> None:
    assert build_query(["MLLM"], ["cs.CV"], [], "au:lecun") == (
        "((au:lecun) OR ti:MLLM OR abs:MLLM) AND (cat:cs.CV)"
    )


def test_quotes_cannot_break_out_of_a_phrase() -> None:
    query = build_query(['say "hi" ) OR all:x', "GPT-4", "OR", '  "  '], [], [])

    # The embedded quotes are dropped and the whole phrase stays one quoted term; a bare
    # operator or a hyphenated word is quoted too; an empty phrase disappears.
    assert query == (
        '(ti:"say hi ) OR all:x" OR abs:"say hi ) OR all:x" OR ti:"GPT-4" OR abs:"GPT-4"'
        ' OR ti:"OR" OR abs:"OR")'
    )


def test_a_topic_without_keywords_or_query_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="keywords .* or a raw arXiv query"):
        build_query([], ["cs.CV"], ["x"], None)
    with pytest.raises(InvalidInput):
        build_query(["  ", ""], [], [], "   ")


def test_a_malformed_category_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="not an arXiv category"):
        build_query(["MLLM"], ["cs.CV OR all:x"], [])


# --------------------------------------------------------------------------- our own feeds


def test_newest_pages_through_results_newest_first(server: ArxivServer) -> None:
    serve_local_pages(server)
    query = build_query(["MLLM"], ["cs.CV"], [])

    papers = list(source(server, page_size=4).newest(query, limit=50))

    assert [paper.arxiv_id for paper in papers] == [f"2605.1000{n}" for n in range(7, 0, -1)]
    assert server.starts() == [0, 4]  # offset 7 reached totalResults: no third request
    first = server.requests[0]
    assert first.path == "/api/query"
    assert first.search_query == query
    assert first.max_results == 4
    assert first.params["sortBy"] == "submittedDate"
    assert first.params["sortOrder"] == "descending"


def test_newest_stops_at_limit_and_asks_for_no_more_than_it_needs(server: ArxivServer) -> None:
    serve_local_pages(server)

    papers = list(source(server, page_size=100).newest("ti:MLLM", limit=3))

    assert len(papers) == 3
    assert [request.max_results for request in server.requests] == [3]


def test_newest_with_no_limit_asks_nothing(server: ArxivServer) -> None:
    assert list(source(server).newest("ti:MLLM", limit=0)) == []
    assert server.requests == []


def test_newest_is_lazy(server: ArxivServer) -> None:
    serve_local_pages(server)
    papers = source(server, page_size=4).newest("ti:MLLM", limit=50)

    assert server.requests == []
    list(itertools.islice(papers, 4))
    assert server.starts() == [0]


def test_a_hostile_title_is_text_decoded_once(server: ArxivServer) -> None:
    serve_local_pages(server)

    paper = by_id(list(source(server, page_size=4).newest("x", 4)))["2605.10007"]

    # Plain data: the markup is text for the renderer to escape, and &amp; became & once.
    assert paper.title == "<script>alert(1)</script> Tokens & Pixels: Hardening MLLM Front-Ends"
    assert "<b>this</b> & that" in paper.abstract


def test_latex_title_many_authors_and_version(server: ArxivServer) -> None:
    serve_local_pages(server)

    paper = by_id(list(source(server, page_size=4).newest("x", 4)))["2605.10006"]

    assert paper.title == (
        "PanGu-$π$: Enhancing Language Model Architectures via Nonlinearity Compensation"
    )
    assert paper.authors == (
        "Yunhe Wang", "Hanting Chen", "Yehui Tang", "Tianyu Guo", "Kai Han", "Zoë Ø. Ðorđević",
    )  # fmt: skip
    assert paper.version == 2
    assert paper.abs_url == "https://arxiv.org/abs/2605.10006"
    assert paper.pdf_url == "https://arxiv.org/pdf/2605.10006v2"
    assert paper.published == datetime(2026, 5, 11, 9, 30, tzinfo=UTC)
    assert paper.updated == datetime(2026, 5, 13, 12, 0, tzinfo=UTC)
    assert paper.published.tzinfo is not None
    assert (paper.comment, paper.journal_ref, paper.doi) == (None, None, None)
    assert paper.categories == ("cs.CL", "cs.LG")
    assert paper.primary_category == "cs.CL"
    assert paper.abstract.startswith("The trend") and paper.abstract.endswith("pangu-pi-demo.")


def test_optional_fields_and_code_links(server: ArxivServer) -> None:
    serve_local_pages(server)

    papers = by_id(list(source(server, page_size=4).newest("x", 10)))

    grounding = papers["2605.10005"]
    assert grounding.doi == "10.1109/CVPR.2026.00042"
    assert grounding.journal_ref == "Proceedings of CVPR 2026"
    assert grounding.comment == "Accepted at CVPR 2026"
    assert grounding.code_urls == ("https://example-lab.github.io/seeing-is-believing/",)
    assert papers["2605.10007"].code_urls == ("https://github.com/example-lab/mllm-hardening",)
    assert papers["2605.10006"].code_urls == (
        "https://huggingface.co/example-lab/pangu-pi",
        "https://huggingface.co/spaces/example-lab/pangu-pi-demo",
    )
    assert papers["2605.10003"].code_urls == ("https://gitlab.com/example-group/tiny/mllm-phone",)
    assert papers["2605.10003"].version == 3
    assert papers["2605.10002"].code_urls == ("https://robots.example.org/mllm",)
    assert papers["2605.10001"].code_urls == ()


def test_newest_stops_after_known_papers_in_a_row(server: ArxivServer) -> None:
    serve_local_pages(server)
    known = {"2605.10007", "2605.10006", "2605.10005", "2605.10004"}  # all of page 1

    papers = list(
        source(server, page_size=4).newest("x", 50, is_known=known.__contains__, stop_after_known=4)
    )

    # The known papers are still yielded (for linking); the page after them is never asked for.
    assert [paper.arxiv_id for paper in papers] == sorted(known, reverse=True)
    assert server.starts() == [0]


def test_a_run_of_known_papers_may_span_pages(server: ArxivServer) -> None:
    serve_local_pages(server)
    known = {"2605.10005", "2605.10004", "2605.10003"}

    papers = list(
        source(server, page_size=4).newest("x", 50, is_known=known.__contains__, stop_after_known=3)
    )

    assert papers[-1].arxiv_id == "2605.10003"
    assert len(papers) == 5
    assert server.starts() == [0, 4]


def test_an_unknown_paper_resets_the_known_count(server: ArxivServer) -> None:
    serve_local_pages(server)
    known = {"2605.10007", "2605.10006", "2605.10004", "2605.10003"}

    papers = list(
        source(server, page_size=4).newest("x", 50, is_known=known.__contains__, stop_after_known=3)
    )

    assert len(papers) == 7
    assert server.starts() == [0, 4]


def test_is_known_is_asked_before_the_caller_stores_the_paper(server: ArxivServer) -> None:
    serve_local_pages(server)
    stored: set[str] = set()

    for paper in source(server, page_size=4).newest(
        "x", 50, is_known=stored.__contains__, stop_after_known=1
    ):
        stored.add(paper.arxiv_id)  # what a fetch job does with every paper it receives

    assert len(stored) == 7


def test_probe_counts_and_samples_with_one_request(server: ArxivServer) -> None:
    serve_local_pages(server)

    total, papers = source(server, page_size=100).probe("ti:MLLM", limit=2)

    assert total == 7
    assert [paper.arxiv_id for paper in papers] == ["2605.10007", "2605.10006"]
    assert len(server.requests) == 1
    assert server.requests[0].max_results == 2


# --------------------------------------------------------------------------- real feeds


def test_paging_over_real_consecutive_pages(server: ArxivServer) -> None:
    for start in (0, 10, 20):
        server.serve(shared_fixture(f"current/all-testing_start{start}_10.xml"), start=start)

    papers = list(source(server, page_size=10).newest("all:testing", limit=30))

    assert server.starts() == [0, 10, 20]
    assert all(request.max_results == 10 for request in server.requests)
    assert len({paper.arxiv_id for paper in papers}) == 30


def test_real_versions_doi_and_journal_ref(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("current/versions-doi-journalref_3.xml"))

    papers = by_id(list(source(server).newest("x", 3)))

    metalic = papers["2410.08355"]
    assert metalic.version == 3
    assert metalic.title == "Metalic: Meta-Learning In-Context with Protein Language Models"
    assert metalic.journal_ref == (
        "The Thirteenth International Conference on Learning Representations (ICLR 2025)"
    )
    assert metalic.doi is None
    assert metalic.code_urls == ("https://github.com/instadeepai/metalic",)
    with_doi = [paper for paper in papers.values() if paper.doi]
    assert {paper.doi for paper in with_doi} == {"10.1002/pro.4380", "10.1038/s42256-022-00499-z"}
    assert any(paper.version >= 2 for paper in with_doi)


def test_real_entity_in_title_is_decoded_exactly_once(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("current/entity-in-title_2.xml"))

    papers = by_id(list(source(server).newest("x", 2)))

    assert papers["1107.0825"].title == "GLACIER and related R&D"


@pytest.mark.parametrize(
    "name", ["2018_10.xml", "au-del-maestro_10.xml", "deep-dream_start0_10.xml"]
)
def test_legacy_wrapped_titles_are_collapsed(server: ArxivServer, name: str) -> None:
    path = shared_fixture(f"legacy/{name}")
    server.default = Reply.file(path)
    raw_titles = [
        entry.findtext(f"{ATOM}title") for entry in etree.parse(path).iterfind(f"{ATOM}entry")
    ]

    papers = list(source(server).newest("x", 10))

    assert len(papers) == 10
    assert [paper.title for paper in papers] == [" ".join(title.split()) for title in raw_titles]
    for paper in papers:
        assert paper.abstract == paper.abstract.strip()
        assert paper.abs_url == f"https://arxiv.org/abs/{paper.arxiv_id}"
        assert paper.pdf_url and paper.pdf_url.startswith("https://arxiv.org/pdf/")


def test_legacy_wrapped_titles_really_are_wrapped() -> None:
    """Guards the test above: its fixture must contain titles that need collapsing."""
    path = shared_fixture("legacy/2018_10.xml")
    titles = [entry.findtext(f"{ATOM}title") for entry in etree.parse(path).iter(f"{ATOM}entry")]

    assert any("\n" in title or "  " in title for title in titles)


def test_old_style_ids_keep_their_archive(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("legacy/au-del-maestro_10.xml"))

    papers = by_id(list(source(server).newest("au:del_maestro", 10)))

    assert papers["cond-mat/0607501"].version == 2
    assert papers["cond-mat/0607501"].abs_url == "https://arxiv.org/abs/cond-mat/0607501"


def test_non_ascii_author_names_are_intact(server: ArxivServer) -> None:
    path = shared_fixture("current/all-testing_start0_100.xml")
    server.default = Reply.file(path)
    entries = etree.parse(path).getroot().iterfind(f"{ATOM}entry")
    expected = [tuple(name.text for name in entry.iter(f"{ATOM}name")) for entry in entries]

    papers = list(source(server, page_size=100).newest("all:testing", 100))

    assert [paper.authors for paper in papers] == expected
    non_ascii = [paper for paper in papers if any(not name.isascii() for name in paper.authors)]
    assert len(non_ascii) == 13
    assert sum(paper.version >= 2 for paper in papers) == 36


def test_newest_stops_after_the_first_page_when_it_was_seen(server: ArxivServer) -> None:
    first_page = shared_fixture("current/all-testing_start0_10.xml")
    for start in (0, 10, 20):
        server.serve(shared_fixture(f"current/all-testing_start{start}_10.xml"), start=start)
    seen = {
        entry.findtext(f"{ATOM}id").rsplit("/abs/", 1)[1].rsplit("v", 1)[0]
        for entry in etree.parse(first_page).iter(f"{ATOM}entry")
    }

    papers = list(
        source(server, page_size=10).newest("all:testing", 30, is_known=seen.__contains__)
    )

    assert len(server.requests) == 1
    assert len(papers) == 5  # stop_after_known defaults to 5


def test_delay_between_requests_is_honoured(server: ArxivServer) -> None:
    for start in (0, 10, 20):
        server.serve(shared_fixture(f"current/all-testing_start{start}_10.xml"), start=start)

    list(source(server, page_size=10, delay=0.3).newest("all:testing", 30))

    times = [request.time for request in server.requests]
    assert len(times) == 3
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(times))


def test_delay_holds_across_calls_and_retries(server: ArxivServer) -> None:
    server.queue(Reply.file(shared_fixture("errors/http503.html"), status=503))
    server.default = Reply.file(local_fixture("mllm_start0_4.xml"))
    polite = source(server, delay=0.25, backoff=0.001)

    polite.probe("x", 1)  # a failed attempt, then its retry
    polite.probe("x", 1)  # a new call, same instance

    times = [request.time for request in server.requests]
    assert len(times) == 3
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))


def test_the_empty_result_is_not_an_error(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("current/empty-result.xml"))

    assert list(source(server).newest("ti:nothing", 10)) == []
    assert source(server).probe("ti:nothing") == (0, [])
    assert len(server.requests) == 2  # one each: an empty first page is not retried


# --------------------------------------------------------------------------- failures


def test_http_error_page_is_retried_then_raised(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("errors/http503.html"), status=503)

    with pytest.raises(ArxivUnavailable) as raised:
        list(source(server, retries=2).newest("ti:MLLM", 10))

    message = str(raised.value)
    assert "HTTP 503" in message and "'503'" in message  # the status and the page's <title>
    assert server.url in message and "gave up after 3 attempts" in message
    assert len(server.requests) == 3


def test_a_transient_error_recovers(server: ArxivServer) -> None:
    server.queue(Reply.file(shared_fixture("errors/http503.html"), status=500))
    server.default = Reply.file(local_fixture("mllm_start0_4.xml"))

    total, papers = source(server).probe("x", 4)

    assert (total, len(papers)) == (7, 4)
    assert len(server.requests) == 2


def test_retries_back_off_exponentially(server: ArxivServer) -> None:
    server.default = Reply.file(shared_fixture("errors/http503.html"), status=503)

    with pytest.raises(ArxivUnavailable):
        source(server, retries=2, backoff=0.1).probe("x")

    first, second, third = (request.time for request in server.requests)
    assert second - first >= 0.1
    assert third - second >= 0.2


@pytest.mark.parametrize("status", [200, 503])
def test_rate_exceeded_is_retried_then_raised(server: ArxivServer, status: int) -> None:
    server.default = Reply.file(shared_fixture("errors/rate-exceeded.txt"), status=status)

    with pytest.raises(ArxivRateLimited, match=r"Rate exceeded\..*HTTP " + str(status)):
        source(server, retries=2).probe("x")

    assert len(server.requests) == 3


def test_an_html_page_with_status_200_is_an_error_not_an_empty_result(
    server: ArxivServer,
) -> None:
    server.default = Reply.file(shared_fixture("errors/http503.html"), status=200)

    with pytest.raises(ArxivBadResponse, match="HTML page instead of an Atom feed"):
        list(source(server).newest("x", 10))


@pytest.mark.parametrize("status", [400, 200])
def test_arxivs_error_feed_carries_its_message_and_is_not_retried(
    server: ArxivServer, status: int
) -> None:
    server.default = Reply.file(
        shared_fixture("errors/http400_error-entry_incorrect-id.xml"), status=status
    )

    with pytest.raises(ArxivQueryError, match="incorrect id format for abc") as raised:
        list(source(server, retries=3).newest("id:abc", 10))

    assert f"HTTP {status}" in str(raised.value)
    assert len(server.requests) == 1


def test_a_client_error_status_is_not_retried(server: ArxivServer) -> None:
    server.default = Reply.text("<html><title>Not Found</title></html>", 404, "text/html")

    with pytest.raises(ArxivQueryError, match="HTTP 404.*'Not Found'"):
        source(server, retries=3).probe("x")

    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_names_url_and_reason() -> None:
    url = refused_url()

    with pytest.raises(ArxivUnavailable) as raised:
        list(ArxivSource(url, delay=0, retries=1, backoff=0.01).newest("x", 10))

    message = str(raised.value)
    assert url in message
    assert "refused" in message.lower()
    assert "gave up after 2 attempts" in message


def test_a_timeout_is_retried_then_raised(server: ArxivServer) -> None:
    server.default = Reply(body=local_fixture("mllm_start0_4.xml").read_bytes(), delay=2.0)

    with pytest.raises(ArxivUnavailable, match="no answer within 0.2 s") as raised:
        source(server, timeout=0.2, retries=1).probe("x")

    assert server.url in str(raised.value)
    assert len(server.requests) == 2


def test_a_garbage_body_is_an_error(server: ArxivServer) -> None:
    server.default = Reply.text("\x00\x01 definitely not <xml", 200, "text/plain")

    with pytest.raises(ArxivBadResponse, match="not an Atom feed .*definitely not"):
        source(server).probe("x")


def test_an_empty_later_page_is_a_clear_error(server: ArxivServer) -> None:
    server.serve(shared_fixture("current/all-testing_start0_10.xml"), start=0)
    server.serve(shared_fixture("current/empty-result.xml"), start=10)

    papers: list[FetchedPaper] = []
    with pytest.raises(ArxivBadResponse, match="empty page") as raised:
        papers.extend(source(server, page_size=10, retries=2).newest("all:testing", 30))

    assert len(papers) == 10  # what came before the failure was delivered
    assert not isinstance(raised.value, arxiv.ArxivError)
    assert "start=10" in str(raised.value)
    assert server.starts() == [0, 10, 10, 10]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=502, content_type="text/html", body=b""),
        Reply(body=b"<?xml version='1.0'?><rss><channel/></rss>"),
        Reply(body=b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>"),  # cut short
    ],
    ids=["empty-502", "not-atom", "truncated"],
)
def test_every_failure_is_a_fetch_error(server: ArxivServer, reply: Reply) -> None:
    server.default = reply

    with pytest.raises(FetchError) as raised:
        source(server, retries=0).probe("x")

    assert server.url in str(raised.value)
    assert not isinstance(raised.value, arxiv.ArxivError)
