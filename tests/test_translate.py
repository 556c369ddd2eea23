"""Translators against local servers that speak each protocol: what they send, how they fail.

Each provider talks to a real HTTP server on loopback (tests/translation_servers.py) that
checks and records what it receives; 429s, 500s, timeouts and malformed answers are injected
there. Nothing is mocked in the client.
"""

from __future__ import annotations

import json
import time

import pytest

from newsletter.config import get_settings
from newsletter.errors import ConfigError
from newsletter.languages import (
    deepl_code,
    google_code,
    libretranslate_candidates,
    translation_language,
)
from newsletter.translate import (
    Budget,
    CheckedTranslator,
    Failure,
    SourceText,
    TranslatorBadAnswer,
    TranslatorRefused,
    TranslatorUnavailable,
    translator_from_settings,
)
from tests.helpers import CITED, CITING, as_translators_write, set_env
from tests.translation_servers import Reply, TranslatorServer, fake_translation

ABSTRACT = (
    "We propose \\method{}, which reaches $92.1\\%$ accuracy with $\\mathcal{O}(n)$ memory."
    " Code: https://github.com/example/method."
)


# Every test runs with the settings fixture (no NEWSLETTER_* variable of the shell leaks in),
# once: nothing here touches the database.
pytestmark = [
    pytest.mark.usefixtures("settings"),
    pytest.mark.parametrize("database_url", [None]),
]


def translator_for(monkeypatch, server: TranslatorServer, budget: float | None = None, **extra):
    values = {
        "translator": server.protocol,
        "translator_url": server.url,
        "translator_key": "test-key:fx" if server.protocol == "deepl" else "sk-test",
        "translator_model": "test-model",
        "translator_timeout": "2",
        "translator_backoff": "0.01",
    }
    settings = set_env(monkeypatch, **(values | extra))
    return translator_from_settings(settings, Budget(budget))


@pytest.fixture(params=["google", "openai", "deepl", "libretranslate"])
def server(request):
    with TranslatorServer(request.param) as running:
        yield running


# ---------------------------------------------------------------- language codes


@pytest.mark.parametrize(
    "tag, stored, google, deepl, libre",
    [
        ("zh", "zh", "zh-CN", "ZH-HANS", ["zh-Hans", "zh"]),
        ("zh-CN", "zh", "zh-CN", "ZH-HANS", ["zh-Hans", "zh"]),
        ("zh-Hans", "zh", "zh-CN", "ZH-HANS", ["zh-Hans", "zh"]),
        ("zh-TW", "zh-TW", "zh-TW", "ZH-HANT", ["zh-Hant", "zt"]),
        ("zh-Hant-HK", "zh-TW", "zh-TW", "ZH-HANT", ["zh-Hant", "zt"]),
        ("pt", "pt", "pt", "PT-BR", ["pt-BR", "pb", "pt"]),
        ("pt-BR", "pt", "pt", "PT-BR", ["pt-BR", "pb", "pt"]),
        ("pt-PT", "pt-PT", "pt-PT", "PT-PT", ["pt-PT", "pt"]),
        ("de-AT", "de", "de", "DE", ["de"]),
        ("ja", "ja", "ja", "JA", ["ja"]),
        ("he", "he", "iw", "HE", ["he"]),
    ],
)
def test_language_codes_per_provider(tag, stored, google, deepl, libre):
    assert translation_language(tag) == stored
    assert google_code(tag) == google
    assert deepl_code(tag) == deepl
    assert libretranslate_candidates(tag) == libre


def test_english_in_any_region_is_never_translated():
    assert translation_language("en") is None and translation_language("en-GB") is None


# ---------------------------------------------------------------- each protocol


def test_google_sends_one_text_per_request_with_the_free_endpoints_parameters(monkeypatch):
    with TranslatorServer("google") as server:
        translator = translator_for(monkeypatch, server)
        result = translator.translate(["First text. Second one.", "Third."], "zh")
        assert result == ["[zh-CN] First text. Second one.", "[zh-CN] Third."]
        assert len(server.requests) == 2
        first = server.requests[0]
        assert (first.method, first.path) == ("GET", "/translate_a/single")
        assert {k: first.param(k) for k in ("client", "sl", "tl", "dt", "q")} == {
            "client": "gtx",
            "sl": "en",
            "tl": "zh-CN",
            "dt": "t",
            "q": "First text. Second one.",
        }
        assert "Authorization" not in first.headers  # no key for the free endpoint


def test_openai_batches_numbered_texts_with_the_key_as_bearer(monkeypatch):
    with TranslatorServer("openai") as server:
        translator = translator_for(monkeypatch, server)
        result = translator.translate(["One [[0]].", "Two.", "Three."], "zh-TW")
        assert result == ["[zh-TW] One [[0]].", "[zh-TW] Two.", "[zh-TW] Three."]
        (request,) = server.requests
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert request.headers["Authorization"] == "Bearer sk-test"
        assert request.body["model"] == "test-model"
        assert request.body["response_format"] == {"type": "json_object"}
        system, user = request.body["messages"]
        assert "Traditional Chinese" in system["content"] and "[[0]]" in system["content"]
        assert json.loads(user["content"]) == {
            "texts": [
                {"id": 1, "text": "One [[0]]."},
                {"id": 2, "text": "Two."},
                {"id": 3, "text": "Three."},
            ]
        }


def test_openai_splits_a_long_list_into_batches_of_the_setting(monkeypatch):
    with TranslatorServer("openai") as server:
        translator = translator_for(monkeypatch, server, translator_batch_size="2")
        assert len(translator.translate(["a.", "b.", "c.", "d.", "e."], "de")) == 5
        assert [
            len(json.loads(r.body["messages"][1]["content"])["texts"]) for r in server.requests
        ] == [2, 2, 1]


def test_deepl_sends_several_texts_with_its_auth_header(monkeypatch):
    with TranslatorServer("deepl") as server:
        translator = translator_for(monkeypatch, server)
        result = translator.translate(["One.", "Two.", "Three."], "pt")
        assert result == ["[PT-BR] One.", "[PT-BR] Two.", "[PT-BR] Three."]
        (request,) = server.requests
        assert (request.method, request.path) == ("POST", "/v2/translate")
        assert request.headers["Authorization"] == "DeepL-Auth-Key test-key:fx"
        assert request.body == {
            "text": ["One.", "Two.", "Three."],
            "source_lang": "EN",
            "target_lang": "PT-BR",
        }


def test_deepl_picks_the_free_or_pro_address_from_the_key(settings, monkeypatch):
    free = set_env(monkeypatch, translator="deepl", translator_key="abc:fx")
    assert translator_from_settings(free).url == "https://api-free.deepl.com/v2/translate"
    pro = set_env(monkeypatch, translator="deepl", translator_key="abc")
    assert translator_from_settings(pro).url == "https://api.deepl.com/v2/translate"


def test_libretranslate_asks_the_servers_codes_once_and_sends_a_list(monkeypatch):
    with TranslatorServer("libretranslate") as server:
        translator = translator_for(monkeypatch, server)
        assert translator.translate(["One.", "Two."], "zh") == ["[zh-Hans] One.", "[zh-Hans] Two."]
        assert translator.translate(["Three."], "zh-TW") == ["[zh-Hant] Three."]
        paths = [(r.method, r.path) for r in server.requests]
        assert paths == [("GET", "/languages"), ("POST", "/translate"), ("POST", "/translate")]
        assert server.requests[1].body == {
            "q": ["One.", "Two."],
            "source": "en",
            "target": "zh-Hans",
            "format": "text",
            "api_key": "sk-test",
        }


# ---------------------------------------------------------------- failures, on every protocol


def test_429_and_500_are_retried_then_succeed(server, monkeypatch):
    translator = translator_for(monkeypatch, server)
    translator.translate(["Warm up."], "de")  # LibreTranslate's /languages, out of the way
    server.clear()
    server.queue(Reply.status_only(429), Reply.status_only(500))
    assert translator.translate(["Hello."], "de")[0].endswith("Hello.")
    assert len(server.requests) == 3


def test_retry_after_is_obeyed(monkeypatch):
    with TranslatorServer("deepl") as server:
        translator = translator_for(monkeypatch, server)
        server.queue(Reply.status_only(429, **{"Retry-After": "0.3"}))
        translator.translate(["Hello."], "de")
        first, second = server.requests
        assert second.time - first.time >= 0.3


def test_a_timeout_is_retried(server, monkeypatch):
    translator = translator_for(monkeypatch, server, translator_timeout="0.3")
    translator.translate(["Warm up."], "de")
    server.clear()
    server.queue(Reply.slow(2))
    started = time.monotonic()
    assert translator.translate(["Hello."], "de")[0].endswith("Hello.")
    assert len(server.requests) == 2 and time.monotonic() - started < 1.5


MALFORMED = {
    "google": Reply.json({"sentences": "no"}),
    "openai": Reply.json(
        {"choices": [{"message": {"content": "Sure! Here it is: Hallo."}, "finish_reason": "stop"}]}
    ),
    "deepl": Reply.json({"translations": []}),
    "libretranslate": Reply.json({"translatedText": "Hallo."}),
}


def test_a_malformed_answer_is_a_bad_answer_not_a_guess(server, monkeypatch):
    translator = translator_for(monkeypatch, server)
    translator.translate(["Warm up."], "de")
    server.queue(MALFORMED[server.protocol])
    with pytest.raises(TranslatorBadAnswer):
        translator.translate(["Hello."], "de")


def test_a_body_that_is_not_json_is_a_bad_answer(server, monkeypatch):
    translator = translator_for(monkeypatch, server)
    translator.translate(["Warm up."], "de")
    server.queue(Reply(200, b"<html>Service Unavailable</html>", "text/html"))
    with pytest.raises(TranslatorBadAnswer, match="not JSON"):
        translator.translate(["Hello."], "de")


@pytest.mark.parametrize(
    "content",
    [
        '{"translations": [{"id": 1, "text": "Eins."}]}',  # one of two
        '{"translations": [{"id": 1, "text": "Eins."}, {"id": 3, "text": "Drei."}]}',
        '{"result": ["Eins.", "Zwei."]}',
    ],
)
def test_openai_answers_must_match_the_numbered_request(monkeypatch, content):
    with TranslatorServer("openai") as server:
        translator = translator_for(monkeypatch, server)
        server.queue(
            Reply.json({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})
        )
        with pytest.raises(TranslatorBadAnswer):
            translator.translate(["One.", "Two."], "de")


def test_openai_accepts_fenced_json_and_a_reasoning_models_thoughts(monkeypatch):
    answer = '{"translations": [{"id": 1, "text": "Eins."}]}'
    with TranslatorServer("openai") as server:
        translator = translator_for(monkeypatch, server)
        for content in (f"```json\n{answer}\n```", f"<think>Let me see.</think>\n{answer}"):
            server.queue(
                Reply.json(
                    {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
                )
            )
            assert translator.translate(["One."], "de") == ["Eins."]


def test_an_answer_cut_off_by_the_length_limit_is_rejected(monkeypatch):
    with TranslatorServer("openai") as server:
        translator = translator_for(monkeypatch, server)
        server.queue(
            Reply.json({"choices": [{"message": {"content": '{"tr'}, "finish_reason": "length"}]})
        )
        with pytest.raises(TranslatorBadAnswer, match="cut off"):
            translator.translate(["One."], "de")


def test_a_bad_key_is_refused_for_good_without_retries(monkeypatch):
    with TranslatorServer("deepl") as server:
        translator = translator_for(monkeypatch, server)
        server.fail_always(Reply.json({"message": "Wrong key"}, status=403))
        with pytest.raises(TranslatorRefused) as refused:
            translator.translate(["Hello."], "de")
        assert refused.value.fatal and len(server.requests) == 1


def test_a_provider_down_longer_than_the_budget_gives_up_in_time(server, monkeypatch):
    translator = translator_for(
        monkeypatch, server, budget=0.6, translator_retries="50", translator_backoff="0.05"
    )
    server.fail_always(Reply.status_only(500))
    started = time.monotonic()
    with pytest.raises(TranslatorUnavailable, match="500"):
        translator.translate(["Hello."], "de")
    assert time.monotonic() - started < 1.0
    assert 2 <= len(server.requests) < 20


# ---------------------------------------------------------------- masking and checks in the loop


def test_math_links_and_macros_travel_masked_and_come_back_whole(monkeypatch):
    with TranslatorServer("google") as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server))
        (outcome,) = checked.translate([SourceText("a", ABSTRACT)], "zh")
        assert outcome.text == f"[zh-CN] {ABSTRACT}"
        sent = server.requests[0].param("q")
        assert "$" not in sent and "https" not in sent and "\\method" not in sent
        assert sent.count("[[") == 4


def test_references_travel_masked_and_come_back_as_written(monkeypatch):
    def mangles_references(text: str, code: str) -> str:
        return fake_translation(as_translators_write(text), code)

    with TranslatorServer("openai", translate=mangles_references) as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server))
        (outcome,) = checked.translate([SourceText("a", CITING)], "zh")
        sent = json.loads(server.requests[0].body["messages"][1]["content"])["texts"][0]
        assert not any(part in sent for part in ("2312", "9901001", "10.1145", "0309136"))
        assert outcome.failure is None, outcome.problem
        for reference in CITED:
            assert outcome.text.count(reference) == 1, reference


def test_a_damaged_translation_is_retried_alone_then_kept(monkeypatch):
    calls = []

    def flaky(text: str, code: str) -> str:
        calls.append(text)
        damaged = len(calls) == 1
        return fake_translation(text.replace("[[0]]", "\\方法｛｝") if damaged else text, code)

    with TranslatorServer("deepl", translate=flaky) as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server), batch_size=8)
        (outcome,) = checked.translate([SourceText("a", ABSTRACT)], "zh")
        assert outcome.text == f"[ZH-HANS] {ABSTRACT}"
        assert len(server.requests) == 2


def test_an_answer_nested_too_deep_to_read_fails_its_texts_not_the_run(monkeypatch):
    with TranslatorServer("openai") as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server), batch_size=8)
        # JSON nested 100,000 levels deep: Python's decoder raises RecursionError on it.
        hostile = Reply(200, b"[" * 100_000 + b"]" * 100_000)
        server.queue(hostile, hostile)
        first, second = checked.translate(
            [SourceText("a", "We study things."), SourceText("b", "We study more.")], "zh"
        )
        assert first.failure is Failure.rejected and "RecursionError" in first.problem
        assert second.text is not None  # asked alone the second time, answered normally
        assert checked.halted is None


def test_control_characters_in_a_translation_fail_its_check(monkeypatch):
    with TranslatorServer("deepl", translate=lambda text, code: f"{text}\x00\x1b") as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server))
        (outcome,) = checked.translate([SourceText("a", "We study things.")], "de")
        assert outcome.text is None and "control characters" in outcome.problem


def test_a_translation_damaged_twice_falls_back_with_the_reason(monkeypatch):
    def breaks_urls(text: str, code: str) -> str:
        return fake_translation(text, code).replace("[[3]]", "https：//github.com/example/method")

    with TranslatorServer("openai", translate=breaks_urls) as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server))
        good = SourceText("good", "We study plain things without links at all.")
        bad = SourceText("bad", ABSTRACT)
        outcomes = checked.translate([good, bad], "zh")
        assert outcomes[0].text is not None
        assert outcomes[1].text is None and outcomes[1].failure is Failure.rejected
        assert "missing [[3]]" in outcomes[1].problem
        # One batch for both, then the failed one alone.
        assert [
            len(json.loads(r.body["messages"][1]["content"])["texts"]) for r in server.requests
        ] == [2, 1]


def test_when_the_provider_is_down_the_run_stops_asking(monkeypatch):
    with TranslatorServer("deepl") as server:
        translator = translator_for(monkeypatch, server, translator_retries="1")
        checked = CheckedTranslator(translator, batch_size=2)
        server.fail_always(Reply.status_only(503))
        items = [SourceText(n, f"Text number {n}.") for n in range(6)]
        outcomes = checked.translate(items, "de")
        assert {o.failure for o in outcomes} == {Failure.unavailable}
        assert len(server.requests) == 2  # one batch, tried twice; the rest not asked
        assert "503" in outcomes[-1].problem


def test_an_unsupported_language_fails_alone_and_is_not_asked_again(monkeypatch):
    with TranslatorServer("libretranslate") as server:
        checked = CheckedTranslator(translator_for(monkeypatch, server), batch_size=1)
        refused = checked.translate([SourceText(1, "Hello."), SourceText(2, "Bye.")], "ko")
        assert {o.failure for o in refused} == {Failure.refused}
        assert "not supported" in refused[1].problem
        (fine,) = checked.translate([SourceText(3, "Hello.")], "de")
        assert fine.text == "[de] Hello."
        targets = [r.body["target"] for r in server.translation_requests()]
        assert targets == ["ko", "de"]


def test_a_wrong_address_stops_the_run_at_once(monkeypatch, settings):
    with TranslatorServer("google") as server:
        settings = set_env(monkeypatch, translator="google", translator_url=server.url + "/nope")
        checked = CheckedTranslator(translator_from_settings(settings))
        outcomes = checked.translate([SourceText(n, f"Text {n}.") for n in range(5)], "de")
        assert {o.failure for o in outcomes} == {Failure.refused}
        assert "HTTP 404" in outcomes[-1].problem and len(server.requests) == 1


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"translator": "deepl"}, "needs NEWSLETTER_TRANSLATOR_KEY"),
        ({"translator": "google", "translator_url": "localhost:5000"}, "must start with http"),
        ({"translator": "bing"}, "translator"),
    ],
)
def test_a_translator_that_cannot_work_is_refused_when_settings_load(
    monkeypatch, values, complaint
):
    for key, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{key.upper()}", value)
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=complaint):
        get_settings()
    get_settings.cache_clear()
