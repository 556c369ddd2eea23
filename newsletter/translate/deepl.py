"""The DeepL API (v2): `POST /v2/translate` with several `text`s in one JSON request, the key in
`Authorization: DeepL-Auth-Key …`. Free keys (ending in `:fx`) live at api-free.deepl.com,
paid ones at api.deepl.com; NEWSLETTER_TRANSLATOR_URL picks another.
"""

from __future__ import annotations

from newsletter.languages import deepl_code
from newsletter.translate.base import HttpClient, TranslatorBadAnswer, batches

FREE_URL = "https://api-free.deepl.com"
PRO_URL = "https://api.deepl.com"
PATH = "/v2/translate"
MAX_TEXTS = 50
"""DeepL takes at most 50 texts per request."""
MAX_REQUEST_BYTES = 100_000
"""DeepL refuses requests above 128 KiB; stay clear of it."""


def default_url(key: str | None) -> str:
    return FREE_URL if key and key.endswith(":fx") else PRO_URL


class DeepLTranslator:
    name = "deepl"

    def __init__(
        self, http: HttpClient, base_url: str, key: str | None, max_batch: int = MAX_TEXTS
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + PATH
        self.key = key
        self.max_batch = min(max_batch, MAX_TEXTS)

    def translate(self, texts: list[str], target: str) -> list[str]:
        translated: list[str] = []
        for batch in _by_size(texts, self.max_batch):
            translated += self._batch(batch, deepl_code(target))
        return translated

    def _batch(self, texts: list[str], code: str) -> list[str]:
        payload = {"text": texts, "source_lang": "EN", "target_lang": code}
        headers = {"Authorization": f"DeepL-Auth-Key {self.key}"} if self.key else {}
        answer = self.http.post_json(self.url, payload, headers)
        try:
            translated = [entry["text"] for entry in answer["translations"]]
        except (KeyError, TypeError) as error:
            raise TranslatorBadAnswer(
                f"DeepL's answer has no translations: {answer!r:.120}"
            ) from error
        if len(translated) != len(texts) or not all(isinstance(t, str) for t in translated):
            raise TranslatorBadAnswer(
                f"DeepL answered {len(translated)} translations for {len(texts)} texts"
            )
        return translated


def _by_size(texts: list[str], most: int) -> list[list[str]]:
    """Batches of at most `most` texts and about `MAX_REQUEST_BYTES` each."""
    result: list[list[str]] = []
    for batch in batches(texts, most):
        current: list[str] = []
        size = 0
        for text in batch:
            length = len(text.encode())
            if current and size + length > MAX_REQUEST_BYTES:
                result.append(current)
                current, size = [], 0
            current.append(text)
            size += length
        result.append(current)
    return result
