"""Followed authors in the email: a reader who follows someone with a new paper gets it first,
in "From people you follow", whatever its topics; everyone else's email is unchanged."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

from newsletter import store
from newsletter.db import session_scope
from newsletter.web import create_app
from tests.helpers import outbox, paper, store_papers, subscribe, text_of

DAY = date(2026, 11, 27)


def follow(settings, email: str, *names: str) -> None:
    with session_scope(settings) as session:
        store.add_follows(session, store.get_subscriber(session, email).id, names)


def listed(message) -> list[str]:
    return re.findall(r"Abstract: https://arxiv\.org/abs/(\S+)", text_of(message))


def test_papers_by_followed_authors_come_first_whatever_their_topic(settings, cli):
    cli("topics", "add", "SLAM", "--keyword", "slam")
    cli("topics", "add", "Glaciers", "--keyword", "glacier")
    he = replace(paper(7, "Masked autoencoders for glaciers"), authors=("K. He", "Ross Girshick"))
    namesake = replace(paper(8, "A paper by another He"), authors=("Xiaofei He", "Ada First"))
    store_papers(settings, "SLAM", paper(1), paper(2), replace(paper(9), authors=("Kaiming He",)))
    store_papers(settings, "Glaciers", he, namesake)
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, "bo@example.org", "SLAM")
    subscribe(cli, "cy@example.org", "SLAM")
    follow(settings, "ada@example.org", "Kaiming He")
    follow(settings, "cy@example.org", "Geoffrey Hinton")  # no paper today

    cli("send", "--date", DAY.isoformat())
    sent = outbox(settings)

    ada = text_of(sent["ada@example.org"])
    assert ada.index("From people you follow") < ada.index("SLAM · ")
    # Both papers by Kaiming He (as "K. He" in a topic she does not follow, and in SLAM),
    # each once; not the other He's paper.
    assert listed(sent["ada@example.org"]) == ["2611.00009", "2611.00007", "2611.00002",
                                                "2611.00001"]  # fmt: skip
    assert "Also in: SLAM" in ada  # 2611.00009 is SLAM's too: shown once, noted
    for other in ("bo@example.org", "cy@example.org"):
        assert "From people you follow" not in text_of(sent[other])
        assert listed(sent[other]) == ["2611.00009", "2611.00002", "2611.00001"]
    html = sent["ada@example.org"].get_body(("html",)).get_content()
    assert html.index("From people you follow") < html.index("arXiv:2611.00002")


def test_the_web_version_and_the_preview_show_what_the_email_shows(settings, cli, tmp_path):
    cli("topics", "add", "SLAM", "--keyword", "slam")
    cli("topics", "add", "Glaciers", "--keyword", "glacier")
    he = replace(paper(7, "Masked autoencoders for glaciers"), authors=("Kaiming He",))
    store_papers(settings, "SLAM", paper(1), paper(2))
    store_papers(settings, "Glaciers", he)
    subscribe(cli, "ada@example.org", "SLAM")
    follow(settings, "ada@example.org", "Kaiming He")

    out = tmp_path / "preview.html"
    cli("preview", "--subscriber", "ada@example.org", "-o", str(out))
    preview = out.read_text()
    assert preview.index("From people you follow") < preview.index("arXiv:2611.00007")
    assert preview.index("arXiv:2611.00007") < preview.index("arXiv:2611.00002")

    cli("send", "--date", DAY.isoformat())
    message = outbox(settings)["ada@example.org"]
    web_version = re.search(r"View in browser: (\S+)", text_of(message)).group(1)
    with create_app(settings).test_client() as client:
        page = client.get(web_version.removeprefix(settings.base_url)).get_data(as_text=True)
    assert "From people you follow" in page
    assert page.index("Masked autoencoders for glaciers") < page.index("Paper number 2")
