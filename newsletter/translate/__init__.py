"""Translating abstracts: the `Translator` interface, its providers, masking and checks.

    translator = translator_from_settings(settings, Budget(settings.translator_budget))
    checked = CheckedTranslator(translator, settings.translator_batch_size)
    outcomes = checked.translate([SourceText(key, abstract, system_names(title))], "zh")

Providers (NEWSLETTER_TRANSLATOR): `google` (the free web endpoint), `openai` (any
OpenAI-compatible chat-completions API), `deepl`, `libretranslate`; `none` keeps the English.
Only `step` (the translation step of a send and of `newsletter translate`) touches the
database: it decides what to translate and stores the results. May import `digest`, `store`
and the bottom modules; never `render`, `delivery`, `web` or `cli`.
"""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.languages import needs_translation, translation_language
from newsletter.translate import deepl, google, libretranslate, openai_chat
from newsletter.translate.base import (
    Budget,
    HttpClient,
    Translator,
    TranslatorBadAnswer,
    TranslatorRefused,
    TranslatorUnavailable,
)
from newsletter.translate.masking import MaskMismatch, mask, problems, restore, system_names
from newsletter.translate.pipeline import (
    CheckedTranslator,
    Failure,
    Outcome,
    SourceText,
    source_text,
)

__all__ = [
    "DEFAULT_URLS",
    "Budget",
    "CheckedTranslator",
    "Failure",
    "HttpClient",
    "MaskMismatch",
    "Outcome",
    "SourceText",
    "Translator",
    "TranslatorBadAnswer",
    "TranslatorRefused",
    "TranslatorUnavailable",
    "mask",
    "needs_translation",
    "problems",
    "restore",
    "source_text",
    "system_names",
    "translation_language",
    "translator_from_settings",
]

DEFAULT_URLS = {
    "google": google.DEFAULT_URL,
    "openai": openai_chat.DEFAULT_URL,
    "deepl": f"{deepl.FREE_URL} for keys ending in :fx, else {deepl.PRO_URL}",
    "libretranslate": libretranslate.DEFAULT_URL,
}


def translator_from_settings(settings: Settings, budget: Budget | None = None) -> Translator | None:
    """The configured translator (None for `none`), its requests bounded by `budget`."""
    provider = settings.translator
    if provider == "none":
        return None
    http = HttpClient(
        timeout=settings.translator_timeout,
        retries=settings.translator_retries,
        backoff=settings.translator_backoff,
        budget=budget,
    )
    key = settings.translator_key.get_secret_value() if settings.translator_key else None
    url = settings.translator_url
    batch = settings.translator_batch_size
    if provider == "google":
        return google.GoogleTranslator(http, url or google.DEFAULT_URL)
    if provider == "openai":
        chat = openai_chat.ChatCompletions(
            http, url or openai_chat.DEFAULT_URL, key, settings.translator_model
        )
        return openai_chat.OpenAIChatTranslator(chat, batch)
    if provider == "deepl":
        return deepl.DeepLTranslator(http, url or deepl.default_url(key), key, batch)
    if provider == "libretranslate":
        return libretranslate.LibreTranslateTranslator(
            http, url or libretranslate.DEFAULT_URL, key, batch
        )
    raise ConfigError(f"unknown translator {provider!r}")  # the settings' Literal prevents it
