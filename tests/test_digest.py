"""Which papers go to whom: windows, segments, caps, deduplication, and sending once."""

from __future__ import annotations

from pathlib import Path

from newsletter import store
from newsletter.daily import send
from newsletter.db import session_scope
from tests.helpers import (
    DAY1,
    DAY2,
    clear_outbox,
    outbox,
    paper,
    set_env,
    store_papers,
    subscribe,
    text_of,
)


def test_each_subscriber_gets_only_their_topics_once(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM", "NeRF")
    subscribe(cli, "bo@example.org", "NeRF")
    subscribe(cli, "cy@example.org", "Diffusion")
    shared = paper(1, "A SLAM system built on NeRF")
    store_papers(settings, "SLAM", shared, paper(2, "Only SLAM"))
    store_papers(settings, "NeRF", shared, paper(3, "Only NeRF"))

    report = send.send(settings, DAY1)
    assert report.sent == 2  # cy's topic has nothing new: no email
    messages = outbox(settings)
    assert set(messages) == {"ada@example.org", "bo@example.org"}
    ada = text_of(messages["ada@example.org"])
    assert ada.count("A SLAM system built on NeRF") == 1  # in two of her topics, shown once
    assert "Only SLAM" in ada and "Only NeRF" in ada
    bo = text_of(messages["bo@example.org"])
    assert "Only NeRF" in bo and "A SLAM system built on NeRF" in bo and "Only SLAM" not in bo


def test_windows_never_drop_or_repeat_a_paper(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1), paper(2))
    assert send.send(settings, DAY1).sent == 1
    first = text_of(outbox(settings)["ada@example.org"])
    assert "Paper number 1" in first and "Paper number 2" in first

    # A rerun on the same day sends nothing twice.
    again = send.send(settings, DAY1)
    assert (again.sent, again.already_sent) == (0, 1)

    # Next day: paper 1 comes back (known), paper 3 is new, and paper 4 was indexed late by
    # arXiv (submitted days ago) but is new to us: it must not be dropped.
    clear_outbox(settings)
    store_papers(settings, "SLAM", paper(1), paper(3), paper(4, days_old=5))
    assert send.send(settings, DAY2).sent == 1
    second = text_of(outbox(settings)["ada@example.org"])
    assert "Paper number 3" in second and "Paper number 4" in second
    assert "Paper number 1" not in second and "Paper number 2" not in second
    assert second.index("Paper number 3") < second.index("Paper number 4")  # newest first


def test_sections_are_capped_with_a_count_of_the_rest(cli, settings, example_topics, monkeypatch):
    settings = set_env(monkeypatch, digest_max_per_topic="3")
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", *[paper(n) for n in range(1, 8)])
    send.send(settings, DAY1)
    message = outbox(settings)["ada@example.org"]
    text = text_of(message)
    shown = [n for n in range(1, 8) if f"Paper number {n}" in text]
    assert shown == [5, 6, 7]  # the newest three
    assert (
        text.index("Paper number 7") < text.index("Paper number 6") < text.index("Paper number 5")
    )
    assert "4 more" in text
    assert "/digests/2026-11-26#slam" in text
    assert "7 new papers" in message["Subject"]


def test_send_empty_setting_mails_everyone(cli, settings, example_topics, monkeypatch):
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, "cy@example.org", "Diffusion")
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, send_empty="true")
    assert send.send(settings, DAY1).sent == 2
    assert "no new papers" in outbox(settings)["cy@example.org"]["Subject"]


def test_unsubscribed_and_bounced_get_nothing(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, "bo@example.org", "SLAM")
    cli("subscribers", "remove", "bo@example.org")
    store_papers(settings, "SLAM", paper(1))
    assert send.send(settings, DAY1).sent == 1
    assert set(outbox(settings)) == {"ada@example.org"}


def test_dry_run_shows_who_gets_what_and_changes_nothing(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM", "NeRF")
    store_papers(settings, "SLAM", paper(1), paper(2))
    result = cli("send", "--dry-run")
    assert "ada@example.org" in result.output and "SLAM, NeRF" in result.output
    assert "1 message(s) would be sent" in result.output
    assert not list(Path(settings.outbox_dir).glob("*.eml"))
    with session_scope(settings) as session:
        assert store.list_digests(session) == []
