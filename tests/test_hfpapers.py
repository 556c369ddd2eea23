"""Code links, second layer: the Hugging Face papers API, and the daily re-check for a week."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from newsletter import store
from newsletter.daily import code_check
from newsletter.db import session_scope
from newsletter.errors import CodeLinkError
from newsletter.models import utcnow
from newsletter.sources.huggingface import HuggingFacePapers, RateLimited, repository_url
from newsletter.web import create_app, pagecache
from tests.arxiv_server import Reply, refused_url
from tests.helpers import paper, set_env, store_papers, subscribe
from tests.hf_server import JSON_TYPE, HuggingFaceServer

REPO = "https://github.com/owner/repo"


@pytest.fixture
def hf():
    with HuggingFaceServer() as server:
        yield server


# The client


def test_github_repo_of_a_known_paper(hf):
    hf.paper("2611.00001", githubRepo=REPO + "/tree/main/src", githubStars=12)
    assert HuggingFacePapers(hf.base_url).code_url("2611.00001") == REPO
    (request,) = hf.requests
    assert request.path == "/api/papers/2611.00001"
    assert request.headers["Accept"] == "application/json"


def test_not_on_hugging_face_is_an_answer_not_an_error(hf):
    assert HuggingFacePapers(hf.base_url).code_url("2611.00404") is None  # the server's 404
    assert hf.asked() == ["2611.00404"]


@pytest.mark.parametrize(
    "github_repo", [None, "", "not a link", "https://example.org/some/page", 42]
)
def test_a_paper_without_a_repository(hf, github_repo):
    fields = {} if github_repo is None else {"githubRepo": github_repo}
    hf.paper("2611.00001", **fields)
    assert HuggingFacePapers(hf.base_url).code_url("2611.00001") is None


def test_old_style_ids_are_not_asked(hf):
    assert HuggingFacePapers(hf.base_url).code_url("hep-th/0101001") is None
    assert hf.requests == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.text("Internal Error", status=500), "HTTP 500"),
        (Reply.text("Bad Gateway", status=502), "HTTP 502"),
        (Reply.text("<html>maintenance</html>", content_type="text/html"), "not JSON"),
        (Reply(200, JSON_TYPE, b"[1, 2]"), "not a paper"),
    ],
)
def test_an_unusable_answer_is_an_error(hf, reply, message):
    hf.reply("2611.00001", reply)
    with pytest.raises(CodeLinkError, match=message):
        HuggingFacePapers(hf.base_url).code_url("2611.00001")


def test_a_slow_answer_times_out(hf):
    hf.reply("2611.00001", Reply(200, JSON_TYPE, b"{}", delay=3))
    with pytest.raises(CodeLinkError, match="did not answer within 0.3 s"):
        HuggingFacePapers(hf.base_url, timeout=0.3).code_url("2611.00001")


def test_rate_limiting_and_refused_connections(hf):
    hf.reply("2611.00001", Reply.text("slow down", status=429))
    with pytest.raises(RateLimited, match="429"):
        HuggingFacePapers(hf.base_url).code_url("2611.00001")
    with pytest.raises(CodeLinkError, match="could not be reached"):
        HuggingFacePapers(refused_url()).code_url("2611.00001")


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("https://github.com/Owner/Repo", "https://github.com/Owner/Repo"),
        ("github.com/owner/repo.git", REPO),
        (
            "https://gitlab.com/group/sub/project/-/tree/main",
            "https://gitlab.com/group/sub/project",
        ),
        ("https://owner.github.io/project/", None),  # a project page, not code
        ("javascript:alert(1)", None),
    ],
)
def test_repository_url(value, url):
    assert repository_url(value) == url


# The daily re-check


WITHOUT_CODE = ["2611.00001", "2611.00002"]


@pytest.fixture
def papers(settings, cli, hf, monkeypatch):
    """Settings asking the local Hugging Face, and three papers seen now: two without code,
    one whose comment links its code."""
    settings = set_env(monkeypatch, hf_code_links="true", hf_api_url=hf.base_url, hf_timeout="2")
    cli("topics", "add", "Vision", "--keyword", "vision")
    with_code = replace(paper(3), code_urls=("https://github.com/example/three",))
    store_papers(settings, "Vision", paper(1), paper(2), with_code)
    return settings


def code_of(settings, arxiv_id: str) -> list[str]:
    with session_scope(settings) as session:
        (found,) = store.papers_by_arxiv_ids(session, [arxiv_id])
        return list(found.code_urls)


def test_new_papers_without_code_are_asked_once_a_day_for_a_week(hf, papers):
    settings = papers
    hf.paper("2611.00001", githubRepo=REPO)
    report = code_check.check_code_links(settings)
    assert sorted(hf.asked()) == WITHOUT_CODE  # not 2611.00003: its comment links its code
    assert (report.checked, report.found, report.errors) == (2, 1, [])
    assert code_of(settings, "2611.00001") == [REPO]
    assert code_of(settings, "2611.00002") == []

    hf.requests.clear()
    code_check.check_code_links(settings)  # the same day: nothing to ask again
    assert hf.asked() == []

    now = utcnow()
    for day in range(1, 8):
        code_check.check_code_links(settings, now=now + timedelta(days=day))
    # Only the paper still without code, once each day of its first week.
    assert hf.asked() == ["2611.00002"] * 6
    code_check.check_code_links(settings, now=now + timedelta(days=9))
    assert len(hf.requests) == 6


def test_code_found_later_is_kept_first(hf, papers):
    settings = papers
    code_check.check_code_links(settings)
    hf.paper("2611.00002", githubRepo=REPO)
    report = code_check.check_code_links(settings, now=utcnow() + timedelta(days=3))
    assert report.found == 1
    assert code_of(settings, "2611.00002") == [REPO]
    assert "1 found" in report.summary()


def test_failures_are_reported_and_asked_again_next_run(hf, papers):
    settings = papers
    hf.reply("2611.00001", Reply.text("Internal Error", status=500))
    hf.paper("2611.00002", githubRepo=REPO)
    report = code_check.check_code_links(settings)
    assert report.checked == 1 and report.found == 1
    assert len(report.errors) == 1 and "2611.00001" in report.errors[0]
    assert "HTTP 500" in report.errors[0]
    assert "1 not answered" in report.summary()

    hf.requests.clear()
    hf.paper("2611.00001", githubRepo="https://github.com/owner/one")
    code_check.check_code_links(settings)  # the same day: only the one that failed
    assert hf.asked() == ["2611.00001"]
    assert code_of(settings, "2611.00001") == ["https://github.com/owner/one"]


def test_a_down_service_is_left_alone_for_the_run(cli, hf, papers):
    settings = papers
    store_papers(settings, "Vision", *(paper(n) for n in range(10, 20)))
    hf.default = Reply.text("down", status=503)
    hf.papers.clear()
    report = code_check.check_code_links(settings)
    assert len(hf.requests) == code_check.CODE_CHECK_GIVE_UP_AFTER
    assert report.stopped and "HTTP 503" in report.stopped


def test_rate_limiting_stops_the_run_at_once(hf, papers):
    settings = papers
    hf.queue(Reply.text("slow down", status=429))
    report = code_check.check_code_links(settings)
    assert len(hf.requests) == 1 and "429" in report.stopped


def test_the_setting_turns_it_off(hf, papers, monkeypatch):
    settings = set_env(monkeypatch, hf_code_links="false")
    report = code_check.check_code_links(settings)
    assert hf.requests == [] and report.summary() == ""


def test_a_new_version_keeps_the_code_found_on_hugging_face(hf, papers):
    settings = papers
    hf.paper("2611.00001", githubRepo=REPO)
    code_check.check_code_links(settings)
    store_papers(settings, "Vision", replace(paper(1), version=2, title="Paper one, revised"))
    assert code_of(settings, "2611.00001") == [REPO]


def test_a_link_found_later_shows_in_the_web_archive(cli, hf, papers, monkeypatch):
    settings = papers
    # A process trusts a page's validators for STAMP_TTL seconds (2): here, not at all, so the
    # page is looked at again right after the code check.
    monkeypatch.setattr(pagecache, "STAMP_TTL", 0.0)
    subscribe(cli, "ada@example.org", "Vision")
    # The day's job after its fetch, while Hugging Face knows no code for paper 2.
    code_check.check_code_links(settings)
    cli("send")
    assert hf.asked().count("2611.00002") == 1
    client = create_app(settings).test_client()
    with session_scope(settings) as session:
        (digest,) = store.list_digests(session)
    path = f"/digests/{digest.issue_date.isoformat()}"
    page = client.get(path).get_data(as_text=True)
    assert "https://github.com/owner/late" not in page

    hf.paper("2611.00002", githubRepo="https://github.com/owner/late")
    code_check.check_code_links(settings, now=utcnow() + timedelta(days=2))
    page = client.get(path).get_data(as_text=True)
    assert '<a href="https://github.com/owner/late">Code</a>' in page
