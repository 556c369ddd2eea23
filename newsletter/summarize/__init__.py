"""One-sentence summaries of the papers a digest shows, in each reader's language (English
too), above the abstract; off unless NEWSLETTER_SUMMARIZER is set.

    summarizer = summarizer_from_settings(settings, Budget(settings.summarizer_budget))
    outcome = CheckedSummarizer(summarizer).summarize(SourceText(key, abstract, names), "de")

Providers (NEWSLETTER_SUMMARIZER): `openai` (any OpenAI-compatible chat-completions API, the
translator's address, key and model unless the summarizer has its own); `none`. The requests,
masking and checks are the translator's (`translate`): this package adds the prompt, the
checks of a sentence, and the step that makes each (paper, language) summary once and stores
it (`step`). May import `translate`, `digest`, `store` and the bottom modules; never `render`,
`delivery`, `web` or `cli`.
"""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.summarize.summarizer import (
    CheckedSummarizer,
    OpenAISummarizer,
    Summarizer,
    problems,
)
from newsletter.translate import Budget, HttpClient
from newsletter.translate.openai_chat import DEFAULT_URL, ChatCompletions

__all__ = [
    "CheckedSummarizer",
    "OpenAISummarizer",
    "Summarizer",
    "problems",
    "summarizer_from_settings",
]


def summarizer_from_settings(settings: Settings, budget: Budget | None = None) -> Summarizer | None:
    """The configured summarizer (None for `none`), its requests bounded by `budget`.

    Its address and key are NEWSLETTER_SUMMARIZER_URL and _KEY, else the translator's when
    that is OpenAI-compatible too; its model NEWSLETTER_SUMMARIZER_MODEL, else the
    translator's. Timeouts and retries are the translator's settings.
    """
    if settings.summarizer == "none":
        return None
    shared = settings.translator == "openai"
    url = settings.summarizer_url or (settings.translator_url if shared else "") or DEFAULT_URL
    secret = settings.summarizer_key or (settings.translator_key if shared else None)
    http = HttpClient(
        timeout=settings.translator_timeout,
        retries=settings.translator_retries,
        backoff=settings.translator_backoff,
        budget=budget,
        purpose="summary",
    )
    chat = ChatCompletions(
        http,
        url,
        secret.get_secret_value() if secret else None,
        settings.summarizer_model or settings.translator_model,
    )
    return OpenAISummarizer(chat)
