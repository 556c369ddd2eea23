"""Google Translate's free web endpoint (`translate_a/single?client=gtx`), as most arXiv digest
pages use it: no key, one text per request, an answer of nested lists:
`[[["译文一", "Source one.", …], ["译文二", "Source two.", …]], null, "en", …]`.
"""

from __future__ import annotations

from newsletter.languages import google_code
from newsletter.translate.base import HttpClient, TranslatorBadAnswer

DEFAULT_URL = "https://translate.googleapis.com"
PATH = "/translate_a/single"


class GoogleTranslator:
    name = "google"
    max_batch = 1

    def __init__(self, http: HttpClient, base_url: str = DEFAULT_URL) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + PATH

    def translate(self, texts: list[str], target: str) -> list[str]:
        code = google_code(target)
        return [self._one(text, code) for text in texts]

    def _one(self, text: str, code: str) -> str:
        params = [("client", "gtx"), ("sl", "en"), ("tl", code), ("dt", "t"), ("q", text)]
        return _translation(self.http.get_json(self.url, params))


def _translation(answer: object) -> str:
    """The translated sentences of the answer, joined; raises on any other shape."""
    if not isinstance(answer, list) or not answer or not isinstance(answer[0], list):
        raise TranslatorBadAnswer(f"Google's answer has no sentence list: {str(answer)[:120]}")
    pieces = []
    for sentence in answer[0]:
        if not isinstance(sentence, list) or not sentence:
            raise TranslatorBadAnswer(f"Google's answer has a malformed sentence: {sentence!r}")
        if sentence[0] is None:
            continue  # transliteration rows carry no translation
        if not isinstance(sentence[0], str):
            raise TranslatorBadAnswer(f"Google's answer has a malformed sentence: {sentence!r}")
        pieces.append(sentence[0])
    if not pieces:
        raise TranslatorBadAnswer("Google's answer holds no translated sentence")
    return "".join(pieces)
