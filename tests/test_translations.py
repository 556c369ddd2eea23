"""Translated abstracts in the daily job: once per paper and language, stored, shown beside the
original; a translator that fails delays nothing, and what failed is translated on the next run.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import date

import pytest

from newsletter import store
from newsletter.config import get_settings
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import Readers
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import SubscriberSpec
from newsletter.models import Paper, Translation
from newsletter.translate import step
from tests.helpers import (
    counted,
    outbox,
    rich_paper,
    set_env,
    store_papers,
    subscribe,
    text_of,
)
from tests.smtp_server import LocalSMTPServer
from tests.translation_servers import Reply, TranslatorServer

DAY1, DAY2 = date(2026, 11, 26), date(2026, 11, 27)


def use_translator(monkeypatch, server: TranslatorServer, **extra: str):
    values = {
        "translator": server.protocol,
        "translator_url": server.url,
        "translator_key": "test-key:fx",
        "translator_timeout": "2",
        "translator_backoff": "0.01",
    }
    return set_env(monkeypatch, **(values | extra))


@pytest.fixture
def google(settings, monkeypatch):
    with TranslatorServer("google") as server:
        use_translator(monkeypatch, server)
        yield server


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def stored(settings) -> dict[tuple[str, str], Translation]:
    with session_scope(settings) as session:
        rows = session.query(Translation).all()
        papers = {p.id: p.arxiv_id for p in store.papers_by_arxiv_ids(session, _all_ids(session))}
        return {(papers[row.paper_id], row.language): row for row in rows}


def _all_ids(session) -> list[str]:
    return [paper.arxiv_id for paper in session.query(Paper).all()]


# ---------------------------------------------------------------- bounded by papers × languages


@pytest.mark.parametrize("protocol", ["google", "deepl"])  # one text per request; batches
def test_requests_are_papers_times_languages_never_subscribers(
    protocol, cli, settings, example_topics, monkeypatch
):
    topic_sets = [("SLAM",), ("NeRF", "Diffusion"), ("SLAM", "NeRF", "Diffusion")]
    with session_scope(settings) as session:
        for n in range(100):
            spec = SubscriberSpec(
                f"reader{n}@example.org",
                topic_sets[(n // 3) % 3],
                language=("zh", "de", "ja")[n % 3],
            )
            store.add_subscriber(session, spec, source="test", clock=SendClock.of(settings))
    store_papers(settings, "SLAM", *[rich_paper(n) for n in (1, 2, 3, 4)])
    store_papers(settings, "NeRF", rich_paper(5), rich_paper(6), rich_paper(4))
    store_papers(settings, "Diffusion", rich_paper(7), rich_paper(8), rich_paper(9))
    papers = 9

    with TranslatorServer(protocol) as server:
        settings = use_translator(monkeypatch, server, translator_batch_size="4")
        report = send.send(settings, DAY1)
        assert report.sent == 100
        calls = len(server.translation_requests())
        assert server.texts_translated == papers * 3
        if protocol == "google":
            assert calls == papers * 3  # one text per request, each text once
        else:
            assert calls == 3 * 3  # per language: batches of 4, 4 and 1 papers
        assert len(stored(settings)) == papers * 3
        assert report.translation.translated == {"zh": papers, "de": papers, "ja": papers}

        server.clear()
        again = send.send(settings, DAY1)
        assert again.already_sent == 100 and server.requests == []


# ---------------------------------------------------------------- end to end


@pytest.fixture
def readers(cli, settings, example_topics):
    subscribe(cli, "li@example.org", "SLAM")
    cli("subscribers", "edit", "li@example.org", "--lang", "zh")
    subscribe(cli, "anna@example.org", "SLAM")
    cli("subscribers", "edit", "anna@example.org", "--lang", "de-AT")
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", rich_paper(1, "PanGu-π: Enhancing Models"), rich_paper(2))
    return settings


def test_readers_get_their_language_with_the_original_and_english_readers_none(
    cli, readers, google, monkeypatch
):
    with LocalSMTPServer() as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        result = cli("send", "--date", DAY1.isoformat())
        assert "3 sent, 0 failed" in result.output
        assert "Translated 4 abstract(s) (de 2, zh 2)" in result.output
        messages = {m["To"]: m for m in smtp.messages}

    li_text, li_html = text_of(messages["li@example.org"]), html_of(messages["li@example.org"])
    # The translation, math made readable and the link whole, then the original below it.
    assert "[zh-CN] We propose \\method{}, which reaches 1.5% accuracy" in li_text
    assert "https://github.com/example/p1." in li_text
    assert li_text.index("[zh-CN] We propose") < li_text.index("Original (English):")
    assert "    | We propose \\method{}, which reaches 1.5% accuracy" in li_text
    assert re.search(
        r'<p[^>]*class="paper-abstract"[^>]*lang="zh"[^>]*>\[zh-CN\] We propose', li_html
    )
    assert re.search(r'class="paper-original"[^>]*lang="en"', li_html)
    assert "PanGu-π: Enhancing Models" in li_html  # the title stays English

    anna = text_of(messages["anna@example.org"])
    assert "[de] We propose" in anna and "Original (English):" in anna

    ada_text, ada_html = text_of(messages["ada@example.org"]), html_of(messages["ada@example.org"])
    assert "[zh-CN]" not in ada_text and "[de]" not in ada_text
    assert "Original (English)" not in ada_text and 'class="paper-original"' not in ada_html
    assert "Not translated" not in ada_text and 'class="paper-translation-note"' not in ada_html
    assert "We propose \\method{}, which reaches 1.5% accuracy" in ada_text

    # The translator saw placeholders, never the math, the macro or the link.
    sent = [request.param("q") for request in google.requests]
    assert len(sent) == 4 and not any("$" in q or "http" in q or "\\method" in q for q in sent)
    assert {request.param("tl") for request in google.requests} == {"zh-CN", "de"}


def test_a_provider_down_past_the_budget_delays_nothing_and_the_next_run_translates(
    cli, readers, google, monkeypatch
):
    set_env(
        monkeypatch, translator_budget="0.5", translator_retries="50", translator_backoff="0.05"
    )
    google.fail_always(Reply.status_only(500))
    started = time.monotonic()
    first = cli("send", "--date", DAY1.isoformat())
    assert time.monotonic() - started < 5
    assert "3 sent, 0 failed" in first.output and "4 left in English" in first.output
    li = text_of(outbox(readers)["li@example.org"])
    assert "[zh-CN]" not in li and "We propose \\method{}, which reaches 1.5% accuracy" in li
    assert "(The translation service did not answer in time: the original is shown.)" in li
    assert 'class="paper-translation-note"' in html_of(outbox(readers)["li@example.org"])
    assert stored(readers) == {}

    google.fail_always(None)
    google.clear()
    second = cli("send", "--date", DAY1.isoformat())
    assert "0 sent" in second.output and "Translated 4 abstract(s)" in second.output
    assert len(google.requests) == 4 and len(stored(readers)) == 4


def test_what_failed_yesterday_is_translated_with_todays_papers(cli, readers, google, monkeypatch):
    set_env(monkeypatch, translator_retries="0")
    google.fail_always(Reply.status_only(503))
    send.send(get_settings(), DAY1)
    assert stored(readers) == {}

    google.fail_always(None)
    store_papers(readers, "SLAM", rich_paper(3))
    report = send.send(get_settings(), DAY2)
    assert report.translation.translated == {"zh": 3, "de": 3}
    assert set(stored(readers)) == {
        (f"2611.0000{n}", language) for n in (1, 2, 3) for language in ("zh", "de")
    }


def test_one_stream_of_the_list_serves_a_send_yesterdays_readers_included(
    cli, readers, google, monkeypatch
):
    """A send needs today's segments (what to translate, then the delivery rows) and yesterday's
    (what failed then is translated now): the list is streamed once for all three. Jo, paused
    yesterday, had no digest then: yesterday's papers are not wanted in Japanese."""
    subscribe(cli, "jo@example.org", "SLAM")
    cli("subscribers", "edit", "jo@example.org", "--lang", "ja")
    with session_scope(readers) as session:
        jo = store.get_subscriber(session, "jo@example.org")
        store.pause_subscriber(session, jo, DAY2, "test")
    set_env(monkeypatch, translator_retries="0")
    google.fail_always(Reply.status_only(503))
    send.send(get_settings(), DAY1)
    google.fail_always(None)
    store_papers(readers, "SLAM", rich_paper(3))

    with counted(get_settings()) as statements:
        report = send.send(get_settings(), DAY2)
    streams = [s for s in statements if "ORDER BY subscribers.id, topics.position" in s]
    assert len(streams) == 1, streams
    assert report.sent == 4
    assert report.translation.translated == {"zh": 3, "de": 3, "ja": 1}


def test_a_damaged_translation_goes_out_in_english_with_a_note(cli, readers, monkeypatch):
    def damages_urls(text: str, code: str) -> str:
        return f"[{code}] " + re.sub(r"\[\[\d+\]\]", "https：//github.com", text)

    with TranslatorServer("deepl", translate=damages_urls) as server:
        use_translator(monkeypatch, server)
        report = send.send(get_settings(), DAY1)
        assert report.sent == 3 and len(report.translation.failed) == 4
        assert len(server.requests) == 2 + 4  # a batch per language, then each alone once
    li = text_of(outbox(readers)["li@example.org"])
    assert "(The machine translation failed our checks: the original is shown.)" in li
    assert "https：//" not in li


def test_translated_titles_show_under_the_english_title(cli, readers, google, monkeypatch):
    set_env(monkeypatch, translate_titles="true")
    send.send(get_settings(), DAY1)
    html = html_of(outbox(readers)["li@example.org"])
    assert re.search(r'class="paper-title-translated"[^>]*lang="zh"[^>]*>\[zh-CN\] PanGu-π', html)
    assert "PanGu-π: Enhancing Models</a>" in html
    title_sent = next(r.param("q") for r in google.requests if r.param("q").startswith("[["))
    assert title_sent == "[[0]]: Enhancing Models"  # the system name is the paper's own
    assert stored(readers)[("2611.00001", "zh")].title == "[zh-CN] PanGu-π: Enhancing Models"


def test_turning_titles_on_later_translates_only_the_titles(cli, readers, google, monkeypatch):
    send.send(get_settings(), DAY1)
    google.clear()
    settings = set_env(monkeypatch, translate_titles="true")
    with session_scope(settings) as session:
        digest = store.digest_on(session, DAY1)
        edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        readers = Readers.stream(session, DAY1)
        wanted = step.shown_by_language(edition, readers.groups)
        work = step.pending(session, wanted, titles=True)
    assert {(w.abstract_needed, w.title_needed) for w in work} == {(False, True)}
    step.translate_work(settings, step.require_translator(settings), work)
    assert len(google.requests) == 4
    assert all(row.title for row in stored(settings).values())


def test_no_translator_means_english_for_everyone(cli, readers):
    report = send.send(get_settings(), DAY1)
    assert report.sent == 3 and report.translation.summary() == ""
    li = text_of(outbox(readers)["li@example.org"])
    assert "Original (English)" not in li and "translat" not in li.lower()


def test_a_new_version_with_a_new_abstract_is_translated_afresh(cli, readers, google):
    send.send(get_settings(), DAY1)
    assert len(stored(readers)) == 4
    newer = replace(rich_paper(1, "PanGu-π: Enhancing Models"), version=2, abstract="Changed.")
    store_papers(readers, "SLAM", newer)
    assert {key for key in stored(readers)} == {("2611.00002", "zh"), ("2611.00002", "de")}


# ---------------------------------------------------------------- the command line


def test_translate_command_fills_in_what_subscribers_need(cli, readers, google):
    result = cli("translate")
    assert "Translated 4 abstract(s) (de 2, zh 2)" in result.output
    assert len(google.requests) == 4
    again = cli("translate")
    assert "Nothing to translate" in again.output and len(google.requests) == 4


def test_translate_command_for_one_language_and_a_date(cli, readers, google):
    assert (
        "Nothing to translate" in cli("translate", "--lang", "fr", "--since", "2999-01-01").output
    )
    result = cli("translate", "--lang", "fr-CA", "--since", "2000-01-01")
    assert "Translated 2 abstract(s) (fr 2)" in result.output
    assert {request.param("tl") for request in google.requests} == {"fr"}


def test_translate_command_reports_failures_and_exits_1(cli, readers, google, monkeypatch):
    set_env(monkeypatch, translator_retries="0")
    google.fail_always(Reply.status_only(500))
    result = cli("translate", ok=False)
    assert result.exit_code == 1
    assert "Not translated: 2611.00001 (de): HTTP 500" in result.output


def test_translate_text_prints_one_translation(cli, google):
    result = cli("translate", "text", "We train $f_\\theta$ at https://x.org/a.", "--lang", "zh")
    assert result.output.strip() == "[zh-CN] We train $f_\\theta$ at https://x.org/a."
    assert "$" not in google.requests[0].param("q")
    assert cli("translate", "text", "Hello.", "--lang", "en-GB").output.strip() == "Hello."


def test_translate_text_says_when_no_translator_is_configured(cli):
    result = cli("translate", "text", "Hello.", "--lang", "zh", ok=False)
    assert result.exit_code == 3 and "no translator is configured" in result.output  # a setting


def test_translate_text_rejects_a_bad_language(cli, google):
    result = cli("translate", "text", "Hello.", "--lang", "not a language!", ok=False)
    assert result.exit_code == 1 and "not a language code" in result.output


def test_the_key_is_masked_in_config(cli, monkeypatch):
    set_env(monkeypatch, translator="deepl", translator_key="deepl-secret-key:fx")
    output = cli("config").output
    assert "deepl-secret-key" not in output
    assert "NEWSLETTER_TRANSLATOR_KEY=********" in output
    assert "NEWSLETTER_TRANSLATOR=deepl" in output


def test_preview_shows_stored_translations(cli, readers, google, tmp_path):
    cli("translate")
    out = tmp_path / "li.html"
    cli("preview", "--subscriber", "li@example.org", "-o", str(out))
    html = out.read_text(encoding="utf-8")
    assert "[zh-CN] We propose" in html and 'class="paper-original"' in html
