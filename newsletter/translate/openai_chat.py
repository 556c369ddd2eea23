"""Any OpenAI-compatible chat-completions API: OpenAI, DeepSeek, Qwen (DashScope), a local Ollama
or vLLM. Several texts travel in one request as numbered JSON, and the answer must be JSON with
exactly those numbers: anything else (a missing or extra entry, prose around the JSON, a reply
cut off by the length limit) is a bad answer, never a guess.
"""

from __future__ import annotations

import json
import re

from newsletter.languages import language_name, translation_language
from newsletter.translate.base import HttpClient, TranslatorBadAnswer, batches

DEFAULT_URL = "https://api.openai.com/v1"
PATH = "/chat/completions"

SYSTEM_PROMPT = """\
You translate abstracts of scientific papers from English into {language} (BCP-47: {tag}).
The user sends JSON: {{"texts": [{{"id": 1, "text": "..."}}, ...]}}.
Answer with JSON only, in this form: {{"translations": [{{"id": 1, "text": "..."}}, ...]}},
one entry for every id you received, with the same ids.
Translate each text completely and faithfully, in the field's usual terminology; do not
summarise, explain or add anything. Keep paragraph breaks.
Tokens like [[0]] or [[12]] stand for formulas, links, code and names: copy each of them
unchanged, exactly once, where it belongs in your sentence."""

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


class ChatCompletions:
    """One OpenAI-compatible chat-completions endpoint: a system and a user message in, the
    first choice's text out (a reasoning model's `<think>` part left out). Translations and
    summaries both talk to it."""

    def __init__(
        self,
        http: HttpClient,
        base_url: str = DEFAULT_URL,
        key: str | None = None,
        model: str = "gpt-4o-mini",
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + PATH
        self.key = key
        self.model = model

    def complete(self, system: str, user: str, *, json_answer: bool = False) -> str:
        """The model's answer to `user` under `system`; raises `TranslationError`s."""
        payload: dict[str, object] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        }
        if json_answer:
            payload["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        answer = self.http.post_json(self.url, payload, headers)
        # Reasoning models (deepseek-r1, qwen3) think aloud before they answer.
        return _THINKING.sub("", _content(answer)).strip()


class OpenAIChatTranslator:
    name = "openai"

    def __init__(self, chat: ChatCompletions, max_batch: int = 8) -> None:
        self.chat = chat
        self.max_batch = max_batch

    def translate(self, texts: list[str], target: str) -> list[str]:
        translated: list[str] = []
        for batch in batches(texts, self.max_batch):
            translated += self._batch(batch, target)
        return translated

    def _batch(self, texts: list[str], target: str) -> list[str]:
        tag = translation_language(target) or target
        request = {"texts": [{"id": n, "text": text} for n, text in enumerate(texts, 1)]}
        answer = self.chat.complete(
            SYSTEM_PROMPT.format(language=language_name(tag), tag=tag),
            json.dumps(request, ensure_ascii=False),
            json_answer=True,
        )
        return _translations(answer, len(texts))


def _content(answer: object) -> str:
    """The message text of the first choice; a reply cut short is a bad answer."""
    try:
        choice = answer["choices"][0]  # type: ignore[index]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise TranslatorBadAnswer(f"no message in the answer: {str(answer)[:120]}") from error
    if choice.get("finish_reason") == "length":
        raise TranslatorBadAnswer("the answer was cut off by the model's length limit")
    if not isinstance(content, str):
        raise TranslatorBadAnswer(f"the message is not text: {content!r:.120}")
    return content


def _translations(text: str, expected: int) -> list[str]:
    """The texts of `{"translations": [{"id": n, "text": …}]}`, ids exactly 1…expected."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
        entries = data["translations"]
        by_id = {int(entry["id"]): entry["text"] for entry in entries}
    except (ValueError, KeyError, TypeError) as error:
        raise TranslatorBadAnswer(
            f"the answer is not the JSON asked for: {text[:120]!r}"
        ) from error
    if len(entries) != expected or sorted(by_id) != list(range(1, expected + 1)):
        raise TranslatorBadAnswer(
            f"asked for ids 1…{expected}, the answer has {sorted(by_id)[:20]}"
        )
    if not all(isinstance(value, str) and value.strip() for value in by_id.values()):
        raise TranslatorBadAnswer("the answer has an empty or non-text translation")
    return [by_id[n] for n in range(1, expected + 1)]
