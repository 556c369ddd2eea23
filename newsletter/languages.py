"""Subscriber languages (BCP-47) → the language a translation is stored under → provider codes.

Translations are shared by every subscriber who reads the same written language: `de`, `de-AT`
and `de-CH` readers share the `de` translation, `zh`, `zh-CN` and `zh-Hans` share `zh`,
`zh-TW`, `zh-HK` and `zh-Hant` share `zh-TW` (providers offer one Traditional Chinese), `pt`
and `pt-BR` share `pt` (Brazilian, the default region of `pt`), other `pt-*` share `pt-PT`.
"""

from __future__ import annotations

_TRADITIONAL_REGIONS = {"TW", "HK", "MO"}

# Names for the language models' prompt: an LLM knows a tag, but a name removes all doubt.
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Brazilian Portuguese",
    "pt-PT": "European Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Simplified Chinese",
    "zh-TW": "Traditional Chinese",
}


def _parts(tag: str) -> tuple[str, str | None, str | None]:
    """(language, script, region) of a tag like `zh-Hant-TW`, `pt-BR`, `sr-Latn`."""
    subtags = tag.replace("_", "-").split("-")
    language, script, region = subtags[0].lower(), None, None
    for subtag in subtags[1:]:
        if len(subtag) == 4 and subtag.isalpha():
            script = subtag.title()
        elif (len(subtag) == 2 and subtag.isalpha()) or (len(subtag) == 3 and subtag.isdigit()):
            region = subtag.upper()
    return language, script, region


def translation_language(tag: str) -> str | None:
    """The language a translation for readers of `tag` is stored under; None for English."""
    language, script, region = _parts(tag)
    if language == "en":
        return None
    if language == "zh":
        traditional = script == "Hant" or (script is None and region in _TRADITIONAL_REGIONS)
        return "zh-TW" if traditional else "zh"
    if language == "pt":
        return "pt" if region in (None, "BR") else "pt-PT"
    return language


def summary_language(tag: str) -> str:
    """The language a summary for readers of `tag` is stored under: a translation's, or `en`
    (English readers get summaries too)."""
    return translation_language(tag) or "en"


def needs_translation(tag: str) -> bool:
    return translation_language(tag) is not None


def language_name(language: str) -> str:
    """`Simplified Chinese` for `zh`; the tag itself where no name is known."""
    return LANGUAGE_NAMES.get(language) or LANGUAGE_NAMES.get(_parts(language)[0]) or language


def google_code(language: str) -> str:
    """Google Translate's `tl`: `zh-CN`, `zh-TW`, `pt`, `pt-PT`, `iw` for Hebrew, else the tag."""
    language = translation_language(language) or "en"
    return {"zh": "zh-CN", "he": "iw", "jv": "jw", "nb": "no"}.get(language, language)


def deepl_code(language: str) -> str:
    """DeepL's `target_lang`: `ZH-HANS`, `ZH-HANT`, `PT-BR`, `PT-PT`, `NB` for Norwegian, `DE`…"""
    language = translation_language(language) or "en"
    special = {"zh": "ZH-HANS", "zh-TW": "ZH-HANT", "pt": "PT-BR", "pt-PT": "PT-PT", "no": "NB"}
    return special.get(language, language.upper())


def libretranslate_candidates(language: str) -> list[str]:
    """LibreTranslate's possible codes, best first: servers differ (`zh-Hans` or `zh`; `zt`)."""
    language = translation_language(language) or "en"
    return {
        "zh": ["zh-Hans", "zh"],
        "zh-TW": ["zh-Hant", "zt"],
        "pt": ["pt-BR", "pb", "pt"],
        "pt-PT": ["pt-PT", "pt"],
    }.get(language, [language])
