"""The archive beyond the digest page: topic pages, each subscriber's own web version, and the
links every email carries to it and to the preferences page."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from urllib.parse import urlsplit

import pytest

from newsletter import store
from newsletter.config import get_settings
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.sources.papers import FetchedPaper
from newsletter.web import create_app, pagecache
from tests.helpers import DAY1, DAY2, paper, set_env, store_papers, subscribe
from tests.web_helpers import html_of, state, text_of, token_path

ADA, BO = "ada@example.org", "bo@example.org"
DAY2_NOON = datetime(DAY2.year, DAY2.month, DAY2.day, 12, tzinfo=UTC)


@pytest.fixture
def sent(settings, cli, example_topics):
    """Two digests: Ada follows SLAM and NeRF, Bo NeRF; MLLM has a paper nobody follows."""
    subscribe(cli, ADA, "SLAM", "NeRF")
    subscribe(cli, BO, "NeRF")
    store_papers(settings, "SLAM", paper(1, "<b>Bold</b> SLAM & friends"))
    store_papers(settings, "NeRF", paper(2, "Radiance"), paper(3))
    store_papers(settings, "MLLM", paper(4, "A paper no subscriber follows"))
    send.send(settings, DAY1)
    store_papers(settings, "SLAM", paper(5, "The next day"))
    send.send(settings, DAY2)
    return settings


@pytest.fixture
def client(sent):
    return create_app(sent).test_client()


def section_slugs(html: str) -> list[str]:
    return re.findall(r'<section class="topic" id="([^"]+)"', html)


def test_the_archive_lists_each_digests_topics_and_the_feeds(client):
    html = client.get("/digests/").get_data(as_text=True)
    for slug in ("slam", "nerf", "mllm"):
        assert f'href="/digests/{DAY1}/{slug}"' in html
    assert f'href="/digests/{DAY2}/slam"' in html and f'href="/digests/{DAY2}/nerf"' not in html
    assert 'href="/feed.xml"' in html and 'href="/topics/nerf/feed.xml"' in html
    assert 'href="/subscribe"' in html


def test_a_day_without_new_papers_is_not_an_issue_of_the_archive(sent, monkeypatch):
    set_env(monkeypatch, send_empty="true")  # its readers were mailed: its page must answer
    empty_day = DAY2 + timedelta(days=1)
    assert send.send(get_settings(), empty_day).sent == 2
    client = create_app(get_settings()).test_client()

    html = client.get("/digests/").get_data(as_text=True)
    assert f'href="/digests/{DAY2}"' in html and f'href="/digests/{DAY1}"' in html
    assert str(empty_day) not in html
    assert client.get(f"/digests/{empty_day}").status_code == 200


def test_a_page_per_topic(client):
    page = client.get(f"/digests/{DAY1}/nerf")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert section_slugs(html) == ["nerf"]
    assert "arXiv:2611.00002" in html and "arXiv:2611.00003" in html
    assert "arXiv:2611.00001" not in html and "A paper no subscriber follows" not in html
    slam = client.get(f"/digests/{DAY1}/slam").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; SLAM &amp; friends" in slam and "<b>Bold" not in slam


@pytest.mark.parametrize(
    "path",
    [
        f"/digests/{DAY1}/no-such-topic",
        "/digests/2026-11-28/slam",  # no digest that day
        "/digests/20261126/slam",
        "/digests/not-a-day/slam",
    ],
)
def test_topic_pages_that_do_not_exist(client, path):
    assert client.get(path).status_code == 404


def sent_on(settings, day) -> dict[str, object]:
    """The digest emails of that day in the outbox, by recipient."""
    return {
        to: message
        for path in sorted(settings.outbox_dir.glob("*.eml"))
        for to, message in [_parsed(path)]
        if message["Subject"].startswith(f"arXiv digest {day}")
    }


def _parsed(path):
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    return message["To"], message


def _links(message) -> dict[str, str]:
    """The paths of a message's View in browser, Preferences and Unsubscribe links."""
    text = text_of(message)
    found = {
        name: urlsplit(re.search(rf"^{name}: (\S+)$", text, re.M).group(1)).path
        for name in ("View in browser", "Preferences", "Unsubscribe")
    }
    for path in found.values():
        assert path in html_of(message)
    return found


def test_every_email_links_its_readers_own_version_and_preferences(settings, client):
    day1, day2 = sent_on(settings, DAY1), sent_on(settings, DAY2)
    assert set(day1) == {ADA, BO} and set(day2) == {ADA}  # DAY2 had SLAM only
    ada, bo = _links(day1[ADA]), _links(day1[BO])
    assert ada["View in browser"].startswith(f"/digests/{DAY1}/for/")
    assert ada["View in browser"] != bo["View in browser"]

    own = client.get(ada["View in browser"])
    assert own.status_code == 200 and own.headers["Cache-Control"] == "no-store"
    assert section_slugs(own.get_data(as_text=True)) == ["slam", "nerf"]
    assert section_slugs(client.get(bo["View in browser"]).get_data(as_text=True)) == ["nerf"]
    ada_day2 = _links(day2[ADA])["View in browser"]
    assert ada_day2.startswith(f"/digests/{DAY2}/for/")
    assert section_slugs(client.get(ada_day2).get_data(as_text=True)) == ["slam"]
    everyone = client.get(f"/digests/{DAY1}").get_data(as_text=True)
    assert section_slugs(everyone) == ["mllm", "slam", "nerf"]  # the public version: all

    preferences = client.get(ada["Preferences"])
    assert preferences.status_code == 200 and ADA in preferences.get_data(as_text=True)
    assert ada["Unsubscribe"].startswith("/unsubscribe/")
    assert client.get(ada["Unsubscribe"]).status_code == 200
    assert state(settings, ADA).status == "active"


def test_a_readers_version_follows_their_current_topics(settings, cli, client):
    path = _links(sent_on(settings, DAY1)[BO])["View in browser"]
    cli("subscribers", "edit", BO, "--add-topic", "MLLM")
    assert section_slugs(client.get(path).get_data(as_text=True)) == ["mllm", "nerf"]


def test_a_readers_version_is_in_their_language_when_translated(sent, settings, cli, monkeypatch):
    cli("subscribers", "edit", BO, "--lang", "zh")
    path = _links(sent_on(settings, DAY1)[BO])["View in browser"]
    english = create_app(settings).test_client().get(path).get_data(as_text=True)
    assert '<html lang="en"' in english  # no translator: every page is English, and says so

    with session_scope(settings) as session:
        for paper_row in store.papers_by_arxiv_ids(session, ["2611.00002"]):
            store.save_translation(session, paper_row.id, "zh", "test", abstract="论文摘要。")
    translated = set_env(
        monkeypatch, TRANSLATOR="libretranslate", TRANSLATOR_URL="http://127.0.0.1:9"
    )
    html = create_app(translated).test_client().get(path).get_data(as_text=True)
    assert '<html lang="zh"' in html
    # The translated abstract shows, marked as Chinese, with the English original folded
    # below it and marked as English.
    assert '<div class="paper-abstract" lang="zh">' in html and "论文摘要。" in html
    original = html.split('<details class="paper-original" lang="en">', 1)[1].split("</details>")[0]
    assert "Abstract of paper 2." in original
    assert '<h3 class="paper-title" lang="en">' in html


def test_a_link_of_someone_who_left_shows_every_topic(settings, cli, client):
    path = _links(sent_on(settings, DAY1)[BO])["View in browser"]
    cli("subscribers", "remove", BO, "--purge")
    page = client.get(path)
    assert page.status_code == 200
    assert set(section_slugs(page.get_data(as_text=True))) == {"mllm", "slam", "nerf"}


def test_bad_web_version_links(settings, client, subtests):
    good = _links(sent_on(settings, DAY1)[ADA])["View in browser"]
    token = good.rsplit("/", 1)[1]
    for kind, path in {
        # Not the last character: base64 leaves its lowest bits unused, so "A" for "B" there
        # can decode to the same signature.
        "tampered": good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:],
        "garbage": f"/digests/{DAY1}/for/garbage",
        "unsubscribe token": f"/digests/{DAY1}/for/"
        + token_path(settings, "unsubscribe", ADA).rsplit("/", 1)[1],
        "preferences token": f"/digests/{DAY1}/for/"
        + token_path(settings, "preferences", ADA).rsplit("/", 1)[1],
    }.items():
        with subtests.test(kind):
            page = client.get(path)
            assert page.status_code == 400
            assert "This link is not valid" in page.get_data(as_text=True)
    assert client.get(f"/digests/2026-11-28/for/{token}").status_code == 404
    assert client.get(f"/digests/20261126/for/{token}").status_code == 404


# ---------------------------------------------------------------- caching the public pages


@pytest.fixture
def fresh_validators(monkeypatch):
    """Validators read again at every request (a process trusts them STAMP_TTL seconds)."""
    monkeypatch.setattr(pagecache, "STAMP_TTL", 0.0)


def test_a_digest_page_is_answered_304_while_unchanged(client, fresh_validators, subtests):
    for path in (f"/digests/{DAY1}", f"/digests/{DAY1}/nerf"):
        with subtests.test(path=path):
            page = client.get(path)
            etag, modified = page.headers["ETag"], page.headers["Last-Modified"]
            assert etag.startswith('W/"') and page.headers["Cache-Control"] == (
                f"public, max-age={pagecache.MAX_AGE}"
            )
            assert page.status_code == 200 and "Set-Cookie" not in page.headers
            for asked in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
                again = client.get(path, headers=asked)
                assert (again.status_code, again.data) == (304, b""), asked
                assert again.headers["ETag"] == etag
            # If-None-Match decides when both are sent (RFC 9110): another ETag, the page.
            other = client.get(
                path, headers={"If-None-Match": 'W/"x"', "If-Modified-Since": modified}
            )
            assert other.status_code == 200 and other.data == page.data
            assert client.head(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/digests/{DAY1}").headers["ETag"] != etag  # each page its own


def etag_and_html(client, path: str) -> tuple[str, str]:
    page = client.get(path)
    assert page.status_code == 200
    return page.headers["ETag"], page.get_data(as_text=True)


def test_a_page_changes_when_what_it_shows_changes(sent, client, fresh_validators):
    path = f"/digests/{DAY1}"
    etag, html = etag_and_html(client, path)
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    # A code link found for one of its papers (the daily code check).
    with session_scope(sent) as session:
        found = store.papers_by_arxiv_ids(session, ["2611.00002"])[0]
        store.record_code_check(session, found.id, "https://github.com/lab/radiance", DAY2_NOON)
    changed_etag, changed_html = etag_and_html(client, path)
    assert changed_etag != etag and "https://github.com/lab/radiance" in changed_html
    assert "https://github.com/lab/radiance" not in html
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 200
    # A new version of a paper, with a new title.
    newer = paper(3, "Radiance, the second version")
    store_papers(sent, "NeRF", FetchedPaper(**{**newer.__dict__, "version": 2}))
    etag, html = changed_etag, changed_html
    changed_etag, changed_html = etag_and_html(client, path)
    assert changed_etag != etag and "Radiance, the second version" in changed_html
    # A topic renamed.
    with session_scope(sent) as session:
        store.topic_by_slug(session, "nerf").name = "Radiance Fields"
    etag = changed_etag
    changed_etag, changed_html = etag_and_html(client, path)
    assert changed_etag != etag and "Radiance Fields" in changed_html
    # Another day's digest is another page: this one is unchanged by it.
    assert client.get(path, headers={"If-None-Match": changed_etag}).status_code == 304


def test_a_process_trusts_a_pages_validators_for_stamp_ttl_seconds(sent, client, monkeypatch):
    """Under load a process looks at a page's validators once every STAMP_TTL seconds, not once
    a request: a change shows at most that much later, and does show then."""
    clock = [1000.0]
    monkeypatch.setattr(pagecache.time, "monotonic", lambda: clock[0])
    path = f"/digests/{DAY1}"
    etag, _html = etag_and_html(client, path)
    with session_scope(sent) as session:
        found = store.papers_by_arxiv_ids(session, ["2611.00002"])[0]
        store.record_code_check(session, found.id, "https://github.com/lab/trusted", DAY2_NOON)
    clock[0] += pagecache.STAMP_TTL / 2
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304  # trusted still
    clock[0] += pagecache.STAMP_TTL
    later_etag, later_html = etag_and_html(client, path)
    assert later_etag != etag and "https://github.com/lab/trusted" in later_html


def test_one_persons_pages_are_never_cached(settings, client):
    path = f"{token_path(settings, 'view', ADA).replace('/view/', f'/digests/{DAY1}/for/')}"
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store" and "ETag" not in page.headers
    assert (
        client.get(path, headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}).status_code
        == 200
    )


def test_the_page_cache_is_bounded_in_bytes():
    cache = pagecache.PageCache(limit=1000)
    for number in range(10):
        cache.put((number,), bytes(200))
    assert cache.size <= 1000 and cache.get((0,)) is None and cache.get((9,)) == bytes(200)
    cache.put(("huge",), bytes(600))  # over a quarter of the limit: never kept
    assert cache.get(("huge",)) is None
