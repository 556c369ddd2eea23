"""One-sentence summaries: made once per (paper, language) by a model speaking chat completions
(a real local server), English readers included, shown above the abstract in the HTML, the
text part and the web pages; a mangled, empty or slow answer leaves the card without one and
delays nothing beyond the summarizer's budget; off by default.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace

import pytest

from newsletter.config import Settings, get_settings
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.models import Paper, Summary
from newsletter.summarize import problems
from newsletter.web import create_app
from tests.helpers import DAY1, outbox, rich_paper, set_env, store_papers, subscribe, text_of
from tests.translation_servers import Reply, TranslatorServer
from tests.web_helpers import html_of, token_path

ADA, ANNA, LI = "ada@example.org", "anna@example.org", "li@example.org"
SUMMARY = re.compile(r'<p[^>]*class="paper-summary"[^>]*lang="([^"]+)"[^>]*>([^<]*)</p>')


def use_summarizer(monkeypatch, server: TranslatorServer, **extra: str) -> Settings:
    values = {
        "summarizer": "openai",
        "summarizer_url": server.url,
        "summarizer_key": "sk-summaries",
        "translator_timeout": "2",
        "translator_backoff": "0.01",
    }
    return set_env(monkeypatch, **(values | extra))


@pytest.fixture
def readers(cli, settings, example_topics):
    """Ada reads English, Anna Austrian German, Li Chinese; SLAM has two new papers."""
    for address, language in ((ADA, None), (ANNA, "de-AT"), (LI, "zh")):
        subscribe(cli, address, "SLAM")
        if language:
            cli("subscribers", "edit", address, "--lang", language)
    store_papers(settings, "SLAM", rich_paper(1, "PanGu-π: Enhancing Models"), rich_paper(2))
    return settings


@pytest.fixture
def model(readers, monkeypatch):
    with TranslatorServer("openai") as server:
        use_summarizer(monkeypatch, server)
        yield server


def stored(settings) -> dict[tuple[str, str], str]:
    with session_scope(settings) as session:
        rows = session.query(Summary, Paper.arxiv_id).join(Paper).all()
        return {(arxiv_id, row.language): row.text for row, arxiv_id in rows}


def summaries_in(html: str) -> list[tuple[str, str]]:
    return SUMMARY.findall(html)


# ---------------------------------------------------------------- made once, shown above


def test_each_paper_is_summarized_once_per_language_and_shown_above_the_abstract(
    cli, readers, model
):
    report = send.send(get_settings(), DAY1)
    assert report.sent == 3
    # Two papers in three languages (de-AT reads de), English included; nobody else is asked.
    assert model.texts_summarized == 6 and len(model.requests) == 6
    assert set(stored(readers)) == {
        (f"2611.0000{n}", language) for n in (1, 2) for language in ("en", "de", "zh")
    }
    assert stored(readers)[("2611.00001", "de")] == (
        "[de] We propose \\method{}, which reaches $1.5\\%$ accuracy on many benchmarks with"
        " less memory."
    )
    with session_scope(readers) as session:
        assert {row.provider for row in session.query(Summary)} == {"openai"}

    # The model saw placeholders, never the math, the macro or the link; with the key.
    for request in model.requests:
        system, user = request.body["messages"]
        assert "[[0]]" in user["content"]
        assert not any(part in user["content"] for part in ("$", "\\method", "https://"))
        assert request.headers["Authorization"] == "Bearer sk-summaries"
        assert "one-sentence" in system["content"] and request.body["model"] == "gpt-4o-mini"
    languages = {
        re.search(
            r"in (\w+(?: \w+)?)\s*\(BCP-47: ([\w-]+)\)", r.body["messages"][0]["content"]
        ).group(1, 2)
        for r in model.requests
    }
    assert languages == {("English", "en"), ("German", "de"), ("Simplified Chinese", "zh")}

    messages = outbox(readers)
    for address, language in ((ADA, "en"), (ANNA, "de"), (LI, "zh")):
        html, text = html_of(messages[address]), text_of(messages[address])
        found = summaries_in(html)
        assert [summary for _lang, summary in found] == [
            f"[{language}] We propose \\method{{}}, which reaches {n}.5% accuracy on many"
            " benchmarks with less memory."
            for n in (2, 1)  # newest first
        ], address
        assert {lang for lang, _summary in found} == {
            {"en": "en", "de": "de-AT", "zh": "zh"}[language]
        }
        # Above the abstract, in the HTML and in the text part.
        first_card = html[html.index('class="paper-summary"') :]
        assert first_card.index("paper-summary") < first_card.index('class="paper-abstract"')
        summary_line = f"    In short: [{language}] We propose \\method{{}}, which reaches 1.5%"
        assert summary_line in text
        assert text.index(summary_line) < text.index(
            "    We propose \\method{}, which reaches 1.5%"
        )


def test_a_second_run_asks_for_nothing_stored(cli, readers, model):
    send.send(get_settings(), DAY1)
    assert model.texts_summarized == 6
    model.clear()
    again = send.send(get_settings(), DAY1)
    assert again.already_sent == 3 and model.requests == []

    # A new reader of a new language is asked for in that language alone.
    subscribe(cli, "jo@example.org", "SLAM")
    cli("subscribers", "edit", "jo@example.org", "--lang", "ja")
    send.send(get_settings(), DAY1)
    assert [r.body["messages"][0]["content"].count("BCP-47: ja") for r in model.requests] == [1, 1]
    assert "In short: [ja] We propose" in text_of(outbox(readers)["jo@example.org"])


def test_the_web_pages_show_the_summary_in_the_readers_language(cli, readers, model):
    send.send(get_settings(), DAY1)
    client = create_app(get_settings()).test_client()
    page = client.get(f"/digests/{DAY1}").get_data(as_text=True)
    assert [lang for lang, _summary in summaries_in(page)] == ["en", "en"]
    assert page.index('class="paper-summary"') < page.index('class="paper-abstract"')
    view = f"/digests/{DAY1}/for/" + token_path(readers, "view", ANNA).rsplit("/", 1)[1]
    anna = client.get(view).get_data(as_text=True)
    assert [summary[:15] for _lang, summary in summaries_in(anna)] == ["[de] We propose"] * 2


def test_a_summary_is_escaped_everywhere(cli, readers, monkeypatch):
    def markup(text: str, code: str) -> str:
        return "We propose <script>alert(1)</script> & [[0]] for <b>SLAM</b>."

    with TranslatorServer("openai", summarize=markup) as server:
        use_summarizer(monkeypatch, server)
        send.send(get_settings(), DAY1)
        page = (
            create_app(get_settings()).test_client().get(f"/digests/{DAY1}").get_data(as_text=True)
        )
    html = html_of(outbox(readers)[ADA])
    for document in (html, page):
        assert "<script>alert" not in document and "<b>SLAM" not in document
        assert "We propose &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\method{} for" in document
    assert "In short: We propose <script>alert(1)</script> &" in text_of(outbox(readers)[ADA])


def test_with_an_openai_translator_its_address_key_and_model_serve_the_summaries(
    cli, readers, monkeypatch
):
    with TranslatorServer("openai") as server:
        set_env(
            monkeypatch,
            translator="openai",
            translator_url=server.url,
            translator_key="sk-shared",
            translator_model="qwen-plus",
            translator_timeout="2",
            summarizer="openai",
        )
        send.send(Settings(), DAY1)
        asked = server.summary_requests()
        assert len(asked) == 6 and len(server.translation_requests()) == 2  # de and zh
    assert {r.headers["Authorization"] for r in asked} == {"Bearer sk-shared"}
    assert {r.body["model"] for r in asked} == {"qwen-plus"}
    li = html_of(outbox(readers)[LI])
    # The summary first, then the translation, then the original.
    assert li.index('class="paper-summary"') < li.index('class="paper-abstract" lang="zh"')
    assert li.index('class="paper-abstract" lang="zh"') < li.index('class="paper-original"')


# ---------------------------------------------------------------- answers that fail


MANGLED = {
    "a placeholder broken": "We propose [[0], which reaches [[1]] accuracy.",
    "a placeholder twice": "We propose [[0]] and [[0]] again.",
    "a placeholder unknown": "We propose [[0]] with [[9]].",
    "the math changed": "We propose [[0]], which reaches $7.5\\%$ accuracy.",
    "a macro of its own": "We propose \\emph{a method} that is fast.",
    "a link broken": "We propose [[0]]; see https：//github.com/example/p1 for code.",
    "two sentences": "We propose [[0]]. It reaches [[1]] accuracy.",
    "far too long": "We propose [[0]], " + "which is good and " * 20 + "fast.",
    "empty": "",
    "blank": "  \n ",
}


@pytest.mark.parametrize("answer", MANGLED.values(), ids=MANGLED.keys())
def test_a_mangled_or_empty_answer_shows_no_summary_and_stores_nothing(
    cli, readers, monkeypatch, caplog, answer
):
    with TranslatorServer("openai", summarize=lambda text, code: answer) as server:
        use_summarizer(monkeypatch, server)
        with caplog.at_level(logging.WARNING, logger="newsletter.summarize.step"):
            report = send.send(get_settings(), DAY1)
        assert report.sent == 3
        assert server.texts_summarized == 6  # each asked once, not again in the same run
    assert stored(readers) == {}
    for message in outbox(readers).values():
        assert "paper-summary" not in html_of(message) and "In short:" not in text_of(message)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "newsletter.summarize.step"]
    assert line.startswith("summaries: Summarized 0 paper(s); 6 without a summary:")


def test_one_good_answer_among_bad_ones_is_kept(cli, readers, monkeypatch):
    def good_in_german_only(text: str, code: str) -> str:
        return f"[{code}] We propose [[0]]." if code == "de" else "We propose [[0]]. Twice."

    with TranslatorServer("openai", summarize=good_in_german_only) as server:
        use_summarizer(monkeypatch, server)
        send.send(get_settings(), DAY1)
    assert stored(readers) == {
        ("2611.00001", "de"): "[de] We propose \\method{}.",
        ("2611.00002", "de"): "[de] We propose \\method{}.",
    }
    assert summaries_in(html_of(outbox(readers)[ANNA]))
    assert not summaries_in(html_of(outbox(readers)[ADA]))


def test_a_slow_model_delays_the_send_by_the_budget_at_most_and_the_next_run_summarizes(
    cli, readers, model, monkeypatch
):
    settings = set_env(
        monkeypatch, summarizer_budget="1", translator_timeout="30", translator_retries="5"
    )
    model.fail_always(Reply.slow(20))
    started = time.monotonic()
    report = send.send(settings, DAY1)
    took = time.monotonic() - started
    assert report.sent == 3
    assert took < 1 + 4, f"the send took {took:.1f} s with a 1 s summary budget"
    assert len(model.requests) == 1  # the budget spent, nobody else is asked in this run
    assert stored(readers) == {}
    assert all("paper-summary" not in html_of(m) for m in outbox(readers).values())

    model.fail_always(None)
    model.clear()
    send.send(settings, DAY1)
    assert model.texts_summarized == 6 and len(stored(readers)) == 6


def test_a_model_that_is_down_is_not_asked_again_in_that_run(cli, readers, model, monkeypatch):
    settings = set_env(monkeypatch, translator_retries="1")
    model.fail_always(Reply.status_only(503))
    assert send.send(settings, DAY1).sent == 3
    assert len(model.requests) == 2  # one paper, tried twice; then the run stops asking
    model.fail_always(Reply.status_only(401))
    model.clear()
    send.send(settings, DAY1)
    assert len(model.requests) == 1 and stored(readers) == {}


# ---------------------------------------------------------------- off by default


def test_off_by_default_no_request_and_no_summary(cli, readers, monkeypatch):
    assert Settings().summarizer == "none"
    with TranslatorServer("openai") as server:
        # Even an OpenAI-compatible translator makes no summaries unless they are asked for.
        set_env(monkeypatch, translator="openai", translator_url=server.url)
        send.send(Settings(), DAY1)
        assert server.summary_requests() == [] and len(server.translation_requests()) == 2
    assert stored(readers) == {}
    for message in outbox(readers).values():
        assert "paper-summary" not in html_of(message) and "In short:" not in text_of(message)


def test_summaries_stored_but_the_summarizer_off_are_not_shown(cli, readers, model, monkeypatch):
    send.send(get_settings(), DAY1)
    assert len(stored(readers)) == 6
    settings = set_env(monkeypatch, summarizer="none")
    page = create_app(settings).test_client().get(f"/digests/{DAY1}").get_data(as_text=True)
    assert "paper-summary" not in page and "We propose" in page


def test_a_new_version_with_a_new_abstract_is_summarized_afresh(cli, readers, model):
    send.send(get_settings(), DAY1)
    newer = replace(rich_paper(1, "PanGu-π: Enhancing Models"), version=2, abstract="Changed.")
    store_papers(readers, "SLAM", newer)
    assert {arxiv_id for arxiv_id, _language in stored(readers)} == {"2611.00002"}


def test_the_key_is_masked_in_config(cli, monkeypatch):
    set_env(monkeypatch, summarizer="openai", summarizer_key="sk-very-secret")
    output = cli("config").output
    assert "sk-very-secret" not in output
    assert "NEWSLETTER_SUMMARIZER_KEY=********" in output
    assert "NEWSLETTER_SUMMARIZER=openai" in output


def test_a_summarizer_url_must_be_a_web_address(cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SUMMARIZER_URL", "ftp://models.example.org")
    result = cli("config", ok=False)
    assert "NEWSLETTER_SUMMARIZER_URL=ftp://models.example.org" in result.output


# ---------------------------------------------------------------- the checks alone


SOURCE = "We train $f_\\theta$ with GRPO on arXiv:2312.17296 data. It works, e.g. on robots."


@pytest.mark.parametrize(
    ("summary", "target"),
    [
        ("We train $f_\\theta$ with GRPO, e.g. on robots.", "en"),
        ("Wir trainieren $f_\\theta$ mit GRPO und KI auf Daten aus arXiv:2312.17296.", "de"),
        ("我们用GRPO训练$f_\\theta$，适用于机器人。", "zh"),
    ],
)
def test_a_sentence_that_keeps_what_it_uses_passes(summary, target):
    assert problems(SOURCE, summary, target) == []


@pytest.mark.parametrize(
    ("summary", "target", "problem"),
    [
        ("We train $f_\\phi$ with GRPO.", "en", "not in the abstract as written: '$f_\\\\phi$'"),
        ("We use arXiv:2312.17297 data.", "en", "not in the abstract as written"),
        ("We train it. It works.", "en", "more than one sentence"),
        ("我们训练它。它有效。", "zh", "more than one sentence"),
        ("我" * 121, "zh", "too long for one sentence: 121 characters"),
        ("We train it with \\方法.", "en", "a LaTeX command came back"),
        ("We train it\x00.", "en", "control characters"),
    ],
)
def test_a_sentence_that_breaks_something_fails(summary, target, problem):
    assert any(problem in found for found in problems(SOURCE, summary, target))
