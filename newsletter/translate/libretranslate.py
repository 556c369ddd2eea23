"""A self-hosted LibreTranslate server: `POST /translate` with `q` as a list of texts, answered
by `{"translatedText": [...]}`. Servers name some languages differently (`zh-Hans` or `zh`,
`zh-Hant` or `zt`, `pt-BR` or `pb`), so the first use of a language asks `GET /languages`
which of the candidates this one knows.
"""

from __future__ import annotations

from newsletter.languages import libretranslate_candidates
from newsletter.translate.base import (
    HttpClient,
    TranslatorBadAnswer,
    TranslatorRefused,
    batches,
)

DEFAULT_URL = "http://localhost:5000"


class LibreTranslateTranslator:
    name = "libretranslate"

    def __init__(
        self,
        http: HttpClient,
        base_url: str = DEFAULT_URL,
        key: str | None = None,
        max_batch: int = 8,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.max_batch = max_batch
        self._known: set[str] | None = None

    def translate(self, texts: list[str], target: str) -> list[str]:
        code = self.code_for(target)
        translated: list[str] = []
        for batch in batches(texts, self.max_batch):
            translated += self._batch(batch, code)
        return translated

    def code_for(self, target: str) -> str:
        candidates = libretranslate_candidates(target)
        known = self._languages()
        return next((code for code in candidates if code in known), candidates[0])

    def _languages(self) -> set[str]:
        if self._known is None:
            try:
                answer = self.http.get_json(self.base_url + "/languages", [])
                self._known = {entry["code"] for entry in answer}
            except (TranslatorBadAnswer, TranslatorRefused, KeyError, TypeError):
                self._known = set()  # an old or unusual server: try the first candidates
        return self._known

    def _batch(self, texts: list[str], code: str) -> list[str]:
        payload: dict[str, object] = {"q": texts, "source": "en", "target": code, "format": "text"}
        if self.key:
            payload["api_key"] = self.key
        answer = self.http.post_json(self.base_url + "/translate", payload)
        translated = answer.get("translatedText") if isinstance(answer, dict) else None
        if not isinstance(translated, list) or len(translated) != len(texts):
            raise TranslatorBadAnswer(
                f"LibreTranslate answered {answer!r:.120} for {len(texts)} texts"
            )
        if not all(isinstance(text, str) for text in translated):
            raise TranslatorBadAnswer("LibreTranslate answered a translation that is not text")
        return translated
