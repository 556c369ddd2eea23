"""Following authors: the store (`store.follows`), the CLI and CSV doors, and the fetch of the
followed authors' papers from a local arXiv serving a real `au:` response. Every test runs on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter import store
from newsletter.authors import follow_key
from newsletter.config import Settings, get_settings
from newsletter.daily import fetch
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.models import Follow, Paper, TopicPaper
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import Cli, paper, query_of, set_env, store_papers, subscribe
from tests.test_authors import author_lists

DEL_MAESTRO = "legacy/au-del-maestro_10.xml"


@pytest.fixture
def arxiv(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """A local arXiv the settings point at (read them again: `get_settings()`), answering any
    query it has no route for with a real empty result."""
    with ArxivServer(default=Reply.file(shared_fixture("current/empty-result.xml"))) as server:
        # The real au: response says 31 papers in pages of 10: one page a query is enough here.
        set_env(
            monkeypatch, arxiv_api_url=server.url, arxiv_backoff="0.01", fetch_max_per_topic="10"
        )
        yield server


@pytest.fixture
def slam(cli: Cli) -> str:
    """A topic readers need, whose query the local arXiv answers with no papers."""
    cli("topics", "add", "SLAM", "--keyword", "slam")
    return "SLAM"


def subscriber_id(settings: Settings, email: str) -> int:
    with session_scope(settings) as session:
        return store.get_subscriber(session, email).id


def follows(settings: Settings, email: str) -> list[tuple[str, str]]:
    with session_scope(settings) as session:
        found = store.follows_of(session, store.get_subscriber(session, email).id)
        return [(follow.name_key, follow.name) for follow in found]


# ------------------------------------------------------------------------------- the store


def test_follow_and_unfollow_by_any_spelling(settings, cli, slam):
    subscribe(cli, "ada@example.org", slam)
    ada = subscriber_id(settings, "ada@example.org")
    with session_scope(settings) as session:
        added = store.add_follows(session, ada, ["Kaiming He", "He, Kaiming", "José Romero"])
        assert added == ["kaiming he", "jose romero"]
        assert store.add_follows(session, ada, ["KAIMING HE", "K. He"]) == ["k he"]
    assert follows(settings, "ada@example.org") == [
        ("kaiming he", "Kaiming He"),
        ("jose romero", "José Romero"),
        ("k he", "K. He"),
    ]
    with session_scope(settings) as session:
        assert store.remove_follows(session, ada, ["He, Kaiming", "Nobody Here"]) == ["kaiming he"]
        with pytest.raises(InvalidInput, match="surname alone"):
            store.add_follows(session, ada, ["Ross Girshick", "He"])  # adds neither
    assert [key for key, _ in follows(settings, "ada@example.org")] == ["jose romero", "k he"]


def test_followed_names_once_per_person_among_active_readers(settings, cli, slam):
    for email, names in (
        ("ada@example.org", ["Kaiming He", "Adrian Del Maestro"]),
        ("bo@example.org", ["He, Kaiming"]),
        ("cy@example.org", ["Subir Sachdev"]),
    ):
        subscribe(cli, email, slam)
        with session_scope(settings) as session:
            store.add_follows(session, subscriber_id(settings, email), names)
    cli("subscribers", "remove", "cy@example.org")  # unsubscribed: their follows are not asked
    with session_scope(settings) as session:
        names = store.followed_names(session)
    assert sorted(map(follow_key, names)) == ["adrian del_maestro", "kaiming he"]


def test_follow_keys_of_many_readers_in_chunks(settings, cli, slam, monkeypatch):
    emails = [f"reader{n}@example.org" for n in range(5)]
    for n, email in enumerate(emails):
        subscribe(cli, email, slam)
        with session_scope(settings) as session:
            store.add_follows(session, subscriber_id(settings, email), ["Kaiming He"][: n % 2])
    ids = [subscriber_id(settings, email) for email in emails]
    monkeypatch.setattr(store.subscribers, "IN_LIST_LIMIT", 2)  # three statements
    with session_scope(settings) as session:
        keys = store.follow_keys_of(session, [*ids, ids[0]])
    assert keys == {i: ("kaiming he",) if n % 2 else () for n, i in enumerate(ids)}


def test_purging_a_subscriber_deletes_their_follows(settings, cli, slam):
    cli("subscribers", "add", "ada@example.org", "--topic", slam, "--follow", "Kaiming He")
    cli("subscribers", "add", "bo@example.org", "--topic", slam, "--follow", "Kaiming He")
    cli("subscribers", "remove", "ada@example.org", "--purge")
    with session_scope(settings) as session:
        rows = session.execute(select(Follow.subscriber_id, Follow.name_key)).all()
    assert rows == [(subscriber_id(settings, "bo@example.org"), "kaiming he")]


def test_papers_first_seen_in_a_window(settings, cli, slam):
    store_papers(settings, slam, paper(1), paper(2), paper(3))
    moments = [datetime(2026, 11, day, 6, tzinfo=UTC) for day in (24, 25, 26)]
    with session_scope(settings) as session:
        for number, moment in zip((1, 2, 3), moments, strict=True):
            stored = session.scalar(select(Paper).where(Paper.arxiv_id == f"2611.{number:05d}"))
            stored.first_seen_at = moment
    with session_scope(settings) as session:
        between = store.papers_first_seen_between(session, moments[0], moments[2])
        assert [p.arxiv_id for p in between] == ["2611.00003", "2611.00002"]
        from_start = store.papers_first_seen_between(session, None, moments[1])
        assert [p.arxiv_id for p in from_start] == ["2611.00002", "2611.00001"]
        assert store.papers_first_seen_between(session, moments[2], moments[2]) == []


# ----------------------------------------------------------------------------- the CLI


def test_cli_add_edit_show_follows(settings, cli, slam):
    result = cli(
        "subscribers", "add", "ada@example.org", "-t", slam,
        "--follow", "Kaiming He", "--follow", "Del Maestro, Adrian",
    )  # fmt: skip
    assert "follows Kaiming He, Del Maestro, Adrian" in result.output
    result = cli(
        "subscribers", "edit", "ada@example.org",
        "--unfollow", "kaiming HE", "--follow", "Subir Sachdev",
    )  # fmt: skip
    assert "follows Del Maestro, Adrian, Subir Sachdev" in result.output
    assert [key for key, _ in follows(settings, "ada@example.org")] == [
        "adrian del_maestro",
        "subir sachdev",
    ]
    shown = cli("subscribers", "show", "ada@example.org").output
    assert "follows: Del Maestro, Adrian, Subir Sachdev" in shown


def test_cli_refuses_a_surname_alone_and_changes_nothing(settings, cli, slam):
    cli("subscribers", "add", "ada@example.org", "-t", slam, "--follow", "Kaiming He")
    result = cli(
        "subscribers", "edit", "ada@example.org", "--follow", "He", "--lang", "fr", ok=False
    )
    assert result.exit_code == 1
    assert "'He' is a surname alone" in result.output
    assert follows(settings, "ada@example.org") == [("kaiming he", "Kaiming He")]
    result = cli("subscribers", "add", "bo@example.org", "-t", slam, "--follow", "He", ok=False)
    assert result.exit_code == 1 and "surname alone" in result.output
    with session_scope(settings) as session:
        assert store.find_subscriber(session, "bo@example.org") is None


def test_csv_follows_column_keeps_the_row_without_a_bad_name(settings, cli, slam, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,topics,language,format,follows\n"
        'ada@example.org,Ada,SLAM,en,,"Kaiming He;He;Del Maestro, Adrian"\n'
        "bo@example.org,Bo,SLAM,en,,\n"
        'cy@example.org,Cy,SLAM,en,,"K. He; He, Kaiming"\n'
    )
    result = cli("subscribers", "import", str(path), ok=False)
    assert result.exit_code == 1
    assert "people.csv:2: rejected: follows: not followed" in result.output
    assert "'He' is a surname alone" in result.output
    assert "3 added; 1 rejected." in result.output
    assert follows(settings, "ada@example.org") == [
        ("kaiming he", "Kaiming He"),
        ("adrian del_maestro", "Del Maestro, Adrian"),
    ]
    assert follows(settings, "bo@example.org") == []
    assert [key for key, _ in follows(settings, "cy@example.org")] == ["k he", "kaiming he"]

    exported = tmp_path / "out.csv"
    cli("subscribers", "export", "-o", str(exported))
    assert "Kaiming He;Del Maestro, Adrian" in exported.read_text()
    # An update replaces the follows a row names; a CSV without the column leaves them.
    path.write_text("email,name,topics,follows\nada@example.org,Ada,SLAM,Subir Sachdev\n")
    assert "1 updated" in cli("subscribers", "import", str(path), "--update").output
    assert follows(settings, "ada@example.org") == [("subir sachdev", "Subir Sachdev")]
    path.write_text("email,name,topics\nada@example.org,Ada,SLAM\n")
    assert "1 unchanged" in cli("subscribers", "import", str(path), "--update").output
    assert follows(settings, "ada@example.org") == [("subir sachdev", "Subir Sachdev")]


# ---------------------------------------------------------------------------- the fetch


def stored(settings: Settings) -> tuple[set[str], int]:
    """The stored papers' ids, and how many topic links there are."""
    with session_scope(settings) as session:
        ids = set(session.scalars(select(Paper.arxiv_id)))
        links = session.scalar(select(func.count()).select_from(TopicPaper))
    return ids, links


def del_maestro_ids(*authors: str) -> set[str]:
    """The papers of the real au:del_maestro response on which one of `authors` is listed."""
    return {
        arxiv_id
        for arxiv_id, listed in author_lists(shared_fixture(DEL_MAESTRO))
        if set(authors) & set(listed)
    }


def test_fetch_asks_arxiv_once_for_the_followed_and_stores_their_papers(
    settings, cli, slam, arxiv, monkeypatch
):
    both = "au:del_maestro_a OR au:rosenow_b"
    arxiv.route(Reply.file(shared_fixture(DEL_MAESTRO)), search_query=both)
    cli("subscribers", "add", "ada@example.org", "-t", slam, "--follow", "Adrian Del Maestro")
    cli("subscribers", "add", "bo@example.org", "-t", slam, "--follow", "Rosenow, Bernd")
    set_env(monkeypatch, fetch_max_per_topic="5")  # a batch reads 5 a name: one page of 10

    report = fetch.fetch(get_settings())

    asked = [r.search_query for r in arxiv.requests]
    assert asked[-1] == both and len(asked) == 2
    assert arxiv.requests[-1].max_results == 10
    entry = report.topics[-1]
    assert (entry.topic, entry.error) == (fetch.FOLLOWS, None)
    everyone = del_maestro_ids("Adrian Del Maestro", "A. Del Maestro")
    assert len(everyone) == 10
    assert stored(settings) == (everyone, 0)  # linked to no topic
    assert entry.new_papers == 10


def test_fetch_stores_only_papers_a_followed_person_wrote(settings, cli, slam, arxiv):
    # arXiv's au: answer is broader than a person: only Bernd Rosenow's papers are kept.
    arxiv.route(Reply.file(shared_fixture(DEL_MAESTRO)), search_query="au:nobody_a OR au:rosenow_b")
    cli("subscribers", "add", "bo@example.org", "-t", slam, "--follow", "B. Rosenow")
    cli("subscribers", "add", "cy@example.org", "-t", slam, "--follow", "Anne Nobody")

    fetch.fetch(get_settings())

    ids, _ = stored(settings)
    assert ids == del_maestro_ids("Bernd Rosenow") and len(ids) == 2


def test_follow_batches_fail_alone(settings, cli, slam, arxiv, monkeypatch):
    set_env(monkeypatch, follow_batch="1", arxiv_retries="0")
    arxiv.route(
        Reply.file(shared_fixture("errors/rate-exceeded.txt"), status=503),
        search_query="au:del_maestro_a",
    )
    arxiv.route(Reply.file(shared_fixture(DEL_MAESTRO)), search_query="au:sachdev_s")
    cli("subscribers", "add", "ada@example.org", "-t", slam, "--follow", "Adrian Del Maestro")
    cli("subscribers", "edit", "ada@example.org", "--follow", "Subir Sachdev")

    report = fetch.fetch(get_settings())

    asked = [r.search_query for r in arxiv.requests]
    assert asked[1:] == ["au:del_maestro_a", "au:sachdev_s"], asked
    assert report.topics[0].error is None  # the topic is untouched
    assert "people you follow" in report.topics[-1].error
    assert "Rate exceeded" in report.topics[-1].error
    # Sachdev's answer is stored; as Del Maestro is followed too, his papers in it are kept.
    assert stored(settings)[0] == del_maestro_ids("Adrian Del Maestro", "A. Del Maestro")
    result = cli("fetch", ok=False)
    assert result.exit_code == 1


def test_no_follows_no_request_and_named_topics_leave_follows_alone(settings, cli, slam, arxiv):
    cli("subscribers", "add", "ada@example.org", "-t", slam)
    report = fetch.fetch(get_settings())
    assert [entry.topic for entry in report.topics] == ["SLAM"]
    cli("subscribers", "edit", "ada@example.org", "--follow", "Kaiming He")
    report = fetch.fetch(get_settings(), ["SLAM"])
    assert [entry.topic for entry in report.topics] == ["SLAM"]
    assert all("au:" not in (r.search_query or "") for r in arxiv.requests)


def test_a_second_fetch_stops_at_the_papers_it_stored(settings, cli, slam, arxiv, monkeypatch):
    set_env(monkeypatch, arxiv_page_size="10", fetch_max_per_topic="30")
    feed = Reply.file(shared_fixture(DEL_MAESTRO))  # 10 entries a page, 31 in all
    for start in (0, 10, 20):
        arxiv.route(feed, search_query="au:del_maestro_a", start=start)
    cli("subscribers", "add", "ada@example.org", "-t", slam, "--follow", "A. Del Maestro")
    fetch.fetch(get_settings())
    first = [r.start for r in arxiv.requests if r.search_query == "au:del_maestro_a"]
    arxiv.requests.clear()
    fetch.fetch(get_settings())
    second = [r.start for r in arxiv.requests if r.search_query == "au:del_maestro_a"]
    assert (first, second) == ([0, 10, 20], [0])


def test_readme_explains_following(settings):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Following authors")[1].split("\n## ")[0]
    for needed in ("--follow", "--unfollow", "au:", "NEWSLETTER_FOLLOW_BATCH", "K. He", "follows"):
        assert needed in section, needed


def test_the_followed_fetch_reads_past_namesakes_and_todays_topic_papers(
    settings, cli, slam, arxiv, monkeypatch
):
    """A followed paper that today's topic fetch stored a moment ago is no "known" one, and
    papers by namesakes (`au:he_k` brings every K. He) neither count towards the stop nor
    break the run: the followed paper after them is stored."""
    he = Entry("2611.00001", "A SLAM paper by Kaiming He", authors=["Kaiming He"])
    namesakes = [Entry(f"2611.0010{n}", f"By Kun He {n}", authors=["Kun He"]) for n in range(6)]
    lecun = Entry("2611.00002", "A paper by Yann LeCun", authors=["Yann LeCun"])
    arxiv.route(Reply(body=feed([he])), search_query=query_of("slam"))
    arxiv.route(Reply(body=feed([he, *namesakes, lecun])), search_query="au:he_k OR au:lecun_y")
    cli("subscribers", "add", "ada@example.org", "-t", slam, "--follow", "Kaiming He")
    cli("subscribers", "edit", "ada@example.org", "--follow", "Yann LeCun")

    report = fetch.fetch(get_settings())

    assert report.topics[-1].error is None
    with session_scope(settings) as session:
        found = {p.arxiv_id for p in store.papers_by_arxiv_ids(session, ["2611.00002"])}
        namesake = store.papers_by_arxiv_ids(session, ["2611.00100"])
    assert found == {"2611.00002"} and namesake == []
