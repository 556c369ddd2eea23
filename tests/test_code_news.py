"""Code released since: a paper a reader was sent without code, whose code is found later (on
Hugging Face, or in a new version's comment), is listed once in their next digest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from newsletter import store
from newsletter.db import session_scope
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.models import Paper, TopicPaper, utcnow
from newsletter.render.email import render_email
from newsletter.render.pages import render_web_digest
from newsletter.sources.arxiv_query import build_query
from newsletter.web import create_app
from tests.arxiv_server import ArxivServer, Reply
from tests.atom import Entry, feed
from tests.helpers import DAY1, DAY2, clear_outbox, outbox, set_env, subscribe, text_of
from tests.hf_server import HuggingFaceServer

DAY3 = date(2026, 11, 30)
HF_REPO = "https://github.com/owner/one"
COMMENT_REPO = "https://github.com/owner/two"
FROM_THE_START = "https://github.com/owner/three"
HEADING = "Code released since"

SLAM_DAY1 = [
    Entry("2611.00001", "SLAM <b>in</b> the dark & rain"),
    Entry("2611.00002", "Dense SLAM, first draft"),
    Entry("2611.00003", "SLAM with code", comment=f"Code: {FROM_THE_START}"),
]
GLACIER_DAY1 = [Entry("2611.00010", "Glacier flow")]


class World:
    """A local arXiv and Hugging Face the settings point at, two topics and three readers."""

    def __init__(self, settings, cli, arxiv: ArxivServer, hf: HuggingFaceServer) -> None:
        self.settings, self.cli, self.arxiv, self.hf = settings, cli, arxiv, hf
        self.queries = {}
        for name, keyword in (("SLAM", "slam"), ("Glaciers", "glacier")):
            cli("topics", "add", name, "--keyword", keyword)
            self.queries[name] = build_query((keyword,), (), (), None)

    def serve(self, topic: str, entries: list[Entry]) -> None:
        """What arXiv answers for the topic from now on (newest first)."""
        self.arxiv.route_first(Reply(body=feed(entries)), search_query=self.queries[topic])

    def send(self, day: date) -> dict:
        clear_outbox(self.settings)
        self.cli("send", "--date", day.isoformat())
        return outbox(self.settings)


@pytest.fixture
def world(settings, cli, monkeypatch) -> Iterator[World]:
    """Day 1 sent (three SLAM papers, one with code from the start; a glacier paper) to Ada
    (SLAM), Bo (Glaciers) and Cy (both); then Hugging Face links 2611.00001's code, and a new
    version of 2611.00002 links its code in its comment, both found by the next fetch, with a
    new SLAM paper for day 2."""
    with ArxivServer() as arxiv, HuggingFaceServer() as hf:
        set_env(monkeypatch, arxiv_api_url=arxiv.url, arxiv_backoff="0.01")
        world = World(settings, cli, arxiv, hf)
        world.serve("SLAM", SLAM_DAY1)
        world.serve("Glaciers", GLACIER_DAY1)
        cli("fetch")
        subscribe(cli, "ada@example.org", "SLAM")
        subscribe(cli, "bo@example.org", "Glaciers")
        subscribe(cli, "cy@example.org", "Glaciers", "SLAM")
        assert set(world.send(DAY1)) == {"ada@example.org", "bo@example.org", "cy@example.org"}

        world.settings = set_env(
            monkeypatch, hf_code_links="true", hf_api_url=hf.base_url, hf_timeout="2"
        )
        hf.paper("2611.00001", githubRepo=HF_REPO)
        hf.paper("2611.00003", githubRepo="https://github.com/owner/another")
        revised = Entry("2611.00002", "Dense SLAM", version=2, comment=f"Code: {COMMENT_REPO}")
        world.serve("SLAM", [Entry("2611.00004", "SLAM today"), revised, *SLAM_DAY1])
        cli("fetch")
        yield world


def code_news_of(message) -> tuple[str, str]:
    """The "Code released since" section of a message: (HTML, text); empty strings without."""
    html = message.get_body(("html",)).get_content()
    text = text_of(message)
    html_part = html[html.index('id="code-released"') : html.index('class="footer"')]
    text_part = text[text.index(HEADING) : text.index("\n-- \n")]
    return html_part, text_part


def stored(settings, arxiv_id: str) -> Paper:
    with session_scope(settings) as session:
        return session.scalar(select(Paper).where(Paper.arxiv_id == arxiv_id))


def test_code_found_later_is_noted_once_and_never_for_a_paper_with_code(world):
    found = stored(world.settings, "2611.00001").code_found_at
    assert found is not None and utcnow() - found < timedelta(minutes=5)
    revised = stored(world.settings, "2611.00002")
    assert (revised.version, revised.code_urls) == (2, [COMMENT_REPO])
    assert revised.code_found_at is not None
    assert stored(world.settings, "2611.00003").code_found_at is None  # code from the start
    assert stored(world.settings, "2611.00004").code_found_at is None  # new, with no code

    # Another link later (a third version's) does not move it.
    world.serve("SLAM", [Entry("2611.00001", "SLAM, v3", version=3, comment=f"See {HF_REPO}2")])
    world.cli("fetch")
    again = stored(world.settings, "2611.00001")
    assert again.version == 3 and again.code_found_at == found


def test_the_next_digest_lists_them_once_in_html_and_text(world):
    sent = world.send(DAY2)
    html, text = code_news_of(sent["ada@example.org"])
    for arxiv_id, repo in (("2611.00001", HF_REPO), ("2611.00002", COMMENT_REPO)):
        assert f'href="https://arxiv.org/abs/{arxiv_id}"' in html
        assert re.search(f'<a href="{repo}"[^>]*>{repo}</a>', html)
        assert f"Abstract: https://arxiv.org/abs/{arxiv_id}" in text
        assert f"Code: {repo}" in text
    assert "· SLAM" in html and "· SLAM" in text
    # Escaped like the rest of the email; the text part is plain.
    assert "SLAM &lt;b&gt;in&lt;/b&gt; the dark &amp; rain" in html
    assert "<b>in</b>" not in html and "SLAM <b>in</b> the dark & rain" in text
    # Not the paper that had code from the start, nor the day's new paper (a card above).
    assert "2611.00003" not in html + text and "2611.00004" not in html + text
    assert text.index("2611.00002") < text.index("2611.00001")  # newest first
    whole = text_of(sent["ada@example.org"])
    assert whole.index("SLAM · 1 new") < whole.index(HEADING)  # after the topic sections

    # Cy reads both topics: listed under SLAM too; Bo's topics have none.
    assert "· SLAM" in code_news_of(sent["cy@example.org"])[1]
    assert "bo@example.org" not in sent  # nothing new for him at all
    assert world.settings.send_empty is False

    # The window after: never the same paper twice.
    world.serve("SLAM", [Entry("2611.00005", "SLAM tomorrow"), Entry("2611.00004", "SLAM today")])
    world.cli("fetch")
    later = world.send(DAY3)
    assert HEADING not in text_of(later["ada@example.org"])
    assert HEADING not in later["ada@example.org"].get_body(("html",)).get_content()


def test_the_web_version_shows_them(world):
    world.send(DAY2)
    client = create_app(world.settings).test_client()
    page = client.get(f"/digests/{DAY2.isoformat()}").get_data(as_text=True)
    section = page[page.index('id="code-released"') :]
    assert f'<a href="{HF_REPO}">{HF_REPO}</a>' in section
    assert f'<a href="{COMMENT_REPO}">{COMMENT_REPO}</a>' in section
    assert "SLAM &lt;b&gt;in&lt;/b&gt; the dark &amp; rain" in section
    assert HEADING not in client.get(f"/digests/{DAY1.isoformat()}").get_data(as_text=True)


def edition_of(settings, day: date) -> Edition:
    with session_scope(settings) as session:
        digest = store.digest_on(session, day)
        return Edition.read(session, digest, EditionOptions.from_settings(settings))


def listed(settings, day: date, *topics: str, **content_args) -> list[str]:
    """The arXiv ids a body of these topics lists under "Code released since"."""
    edition = edition_of(settings, day)
    by_name = {topic.name: topic.id for topic in edition.topics}
    content = edition.content([by_name[name] for name in topics], **content_args)
    return [news.paper.arxiv_id for news in content.code_released]


def test_only_papers_first_matched_within_the_days(world, monkeypatch):
    world.send(DAY2)
    assert listed(world.settings, DAY2, "SLAM") == ["2611.00002", "2611.00001"]
    assert listed(world.settings, DAY2, "Glaciers") == []
    # 2611.00001 first matched 40 days ago: older than NEWSLETTER_CODE_NEWS_DAYS (30).
    with session_scope(world.settings) as session:
        (paper_id,) = session.scalars(select(Paper.id).where(Paper.arxiv_id == "2611.00001"))
        session.execute(
            update(TopicPaper)
            .where(TopicPaper.paper_id == paper_id)
            .values(linked_at=utcnow() - timedelta(days=40))
        )
    assert listed(world.settings, DAY2, "SLAM") == ["2611.00002"]
    world.settings = set_env(monkeypatch, code_news_days="45")
    assert listed(world.settings, DAY2, "SLAM") == ["2611.00002", "2611.00001"]


def test_a_reader_start_narrows_them(world):
    """A reader given their first digest after these papers were sent gets none of them."""
    world.send(DAY2)
    with session_scope(world.settings) as session:
        day2 = store.digest_on(session, DAY2)
    first_ever = day2.window_start - timedelta(days=1)
    assert listed(world.settings, DAY2, "SLAM", code_since=first_ever) == [
        "2611.00002",
        "2611.00001",
    ]
    assert listed(world.settings, DAY2, "SLAM", code_since=day2.window_start) == []
    # A narrower `since` read once for the edition (what the sender may pass) holds as well.
    edition = edition_of(world.settings, DAY2)
    with session_scope(world.settings) as session:
        edition.read_code_news(session, since=day2.window_start)
    assert edition.content(edition.topic_ids).code_released == ()


def test_code_news_alone_is_news_and_says_so(world):
    """A reader whose topics have nothing new, but code for earlier papers, has news."""
    world.send(DAY2)
    alone = edition_of(world.settings, DAY2)
    slam = next(topic.id for topic in alone.topics if topic.name == "SLAM")
    alone.papers = {topic_id: [] for topic_id in alone.papers}  # the day brought nothing new
    content = alone.content([slam])
    assert content.paper_count == 0 and content.has_news
    assert [news.paper.arxiv_id for news in content.code_released] == ["2611.00002", "2611.00001"]
    body = render_email(content, sender_name="arXiv Digest")
    assert body.subject.endswith(": code released for 2 earlier papers")
    assert "No new papers in your topics today" in body.text
    assert f"Code: {HF_REPO}" in body.text
    assert re.search(f'Code: <a href="{HF_REPO}"[^>]*>{HF_REPO}</a>', body.html)
    page = render_web_digest(content, site_name="arXiv Digest")
    assert f'<a href="{COMMENT_REPO}">{COMMENT_REPO}</a>' in page


def test_the_setting_at_zero_turns_it_off(world, monkeypatch):
    world.settings = set_env(monkeypatch, code_news_days="0")
    sent = world.send(DAY2)
    assert "2611.00004" in text_of(sent["ada@example.org"])
    assert HEADING not in text_of(sent["ada@example.org"])
    assert not re.search("code-released", sent["ada@example.org"].get_body(("html",)).get_content())


def test_a_reader_who_joined_after_those_papers_were_sent_is_not_told_of_their_code(world):
    """Dee joins after the day-1 papers went out (three days ago, here): her first digest has
    no "Code released since" for them; Ada, a reader of long standing, has. Two bodies."""
    from newsletter.models import Subscriber

    settings = world.settings
    three_days_ago = utcnow() - timedelta(days=3)
    day1 = [entry.arxiv_id for entry in SLAM_DAY1 + GLACIER_DAY1]
    with session_scope(settings) as session:
        ids = select(Paper.id).where(Paper.arxiv_id.in_(day1)).scalar_subquery()
        session.execute(
            update(TopicPaper).where(TopicPaper.paper_id.in_(ids)).values(linked_at=three_days_ago)
        )
        session.execute(update(Subscriber).values(created_at=utcnow() - timedelta(days=5)))
    subscribe(world.cli, "dee@example.org", "SLAM")

    sent = world.send(DAY2)

    assert "2611.00001" in code_news_of(sent["ada@example.org"])[1]
    dee = text_of(sent["dee@example.org"])
    assert "SLAM today" in dee  # the day's paper
    assert HEADING not in dee
