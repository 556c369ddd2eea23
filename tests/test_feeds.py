"""Atom feeds: every topic at /feed.xml, one topic at /topics/<slug>/feed.xml; valid, escaped."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

import pytest
from lxml import etree

from newsletter.daily import send
from newsletter.sources.papers import FetchedPaper
from newsletter.web import create_app
from tests.helpers import DAY1, DAY2, paper, store_papers

NS = {"a": "http://www.w3.org/2005/Atom"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def client(settings, cli, example_topics):
    return create_app(settings).test_client()


@pytest.fixture
def published(settings, client):
    hostile: FetchedPaper = replace(
        paper(1, "<script>alert(1)</script> Tom & Jerry's $\\alpha$-SLAM"),
        abstract='An abstract with <b>tags</b>, "quotes" & a control\x0c character.',
        authors=("Zoë Ångström", "李华", "<img src=x onerror=alert(1)>"),
    )
    store_papers(settings, "SLAM", hostile, paper(2, "Second SLAM paper"))
    store_papers(settings, "NeRF", paper(3, "Radiance"), paper(2, "Second SLAM paper"))
    send.send(settings, DAY1)
    store_papers(settings, "SLAM", paper(4, "Next day"))
    send.send(settings, DAY2)
    store_papers(settings, "SLAM", paper(5, "Not in a digest yet"))
    return client


def parse(response) -> etree._Element:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response.data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    # A strict parser: no recovery, no entities from outside, no network.
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(response.data, parser)


def check_atom(feed: etree._Element) -> None:
    """What RFC 4287 requires of a feed and its entries."""
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    for name in ("id", "title", "updated"):
        assert len(feed.findall(f"a:{name}", NS)) == 1, name
    assert RFC3339.match(feed.findtext("a:updated", namespaces=NS))
    assert feed.find("a:author/a:name", NS) is not None  # so entries need no author of their own
    assert feed.find("a:link[@rel='self']", NS) is not None
    ids = []
    for entry in feed.findall("a:entry", NS):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"a:{name}", NS)) == 1, name
        assert RFC3339.match(entry.findtext("a:updated", namespaces=NS))
        assert RFC3339.match(entry.findtext("a:published", namespaces=NS))
        alternates = entry.findall("a:link[@rel='alternate']", NS)
        assert len(alternates) == 1 and alternates[0].get("href").startswith("http")
        assert entry.find("a:summary", NS).get("type") == "text"
        ids.append(entry.findtext("a:id", namespaces=NS))
    assert len(ids) == len(set(ids))


def entries(feed) -> dict[str, etree._Element]:
    return {entry.findtext("a:id", namespaces=NS): entry for entry in feed.findall("a:entry", NS)}


def test_the_all_topics_feed(published):
    feed = parse(published.get("/feed.xml"))
    check_atom(feed)
    assert feed.findtext("a:id", namespaces=NS) == "http://localhost:8000/feed.xml"
    found = entries(feed)
    # Every paper a digest carried, once, newest digest first; none a digest has not carried.
    assert list(found) == [f"https://arxiv.org/abs/2611.0000{n}" for n in (4, 3, 2, 1)]
    second = found["https://arxiv.org/abs/2611.00002"]
    assert sorted(c.get("term") for c in second.findall("a:category", NS)) == ["NeRF", "SLAM"]
    related = {link.get("type"): link.get("href") for link in second.findall("a:link", NS)}
    assert related["text/html"] == f"http://localhost:8000/digests/{DAY1}"
    assert related["application/pdf"].startswith("https://arxiv.org/pdf/")
    newest = found["https://arxiv.org/abs/2611.00004"]
    assert newest.find("a:link[@type='text/html']", NS).get("href").endswith(f"/digests/{DAY2}")
    updated = datetime.fromisoformat(feed.findtext("a:updated", namespaces=NS))
    assert all(
        datetime.fromisoformat(entry.findtext("a:updated", namespaces=NS)) <= updated
        for entry in found.values()
    )


def test_paper_text_is_escaped_and_readable(published):
    raw = published.get("/feed.xml").data.decode()
    assert "<script>" not in raw and "<b>" not in raw and "<img" not in raw
    assert "&lt;script&gt;" in raw and "Tom &amp; Jerry" in raw
    entry = entries(parse(published.get("/feed.xml")))["https://arxiv.org/abs/2611.00001"]
    assert entry.findtext("a:title", namespaces=NS) == (
        "<script>alert(1)</script> Tom & Jerry's α-SLAM"
    )
    summary = entry.findtext("a:summary", namespaces=NS)
    assert '<b>tags</b>, "quotes" &' in summary and "\x0c" not in summary  # XML forbids it
    names = [name.text for name in entry.findall("a:author/a:name", NS)]
    assert names == ["Zoë Ångström", "李华", "<img src=x onerror=alert(1)>"]


def test_a_feed_per_topic(published):
    feed = parse(published.get("/topics/nerf/feed.xml"))
    check_atom(feed)
    assert feed.findtext("a:id", namespaces=NS) == "http://localhost:8000/topics/nerf/feed.xml"
    assert "NeRF" in feed.findtext("a:title", namespaces=NS)
    found = entries(feed)
    assert list(found) == [f"https://arxiv.org/abs/2611.0000{n}" for n in (3, 2)]
    archive = found["https://arxiv.org/abs/2611.00003"].find("a:link[@type='text/html']", NS)
    assert archive.get("href") == f"http://localhost:8000/digests/{DAY1}/nerf"
    page = published.get(archive.get("href").removeprefix("http://localhost:8000"))
    assert page.status_code == 200


def test_feeds_before_any_digest_are_valid_and_empty(client):
    for path in ("/feed.xml", "/topics/slam/feed.xml"):
        feed = parse(client.get(path))
        check_atom(feed)
        assert feed.findall("a:entry", NS) == []


def test_unknown_topics_have_no_feed(client):
    assert client.get("/topics/no-such-topic/feed.xml").status_code == 404
    assert client.get("/topics/slam/feed.json").status_code == 404


def test_feeds_are_advertised_and_cacheable(published):
    response = published.get("/feed.xml")
    assert "max-age" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = published.get("/digests/").get_data(as_text=True)
    assert 'rel="alternate" type="application/atom+xml"' in page
