"""One sentence about a paper, in its reader's language, from an OpenAI-compatible model.

The abstract goes out masked as for a translation (math, commands, links, references, code and
names as `[[n]]`), and the answer comes back through checks: placeholders used at most once
each and none broken, every formula, link, identifier or name in it one the abstract has
(unchanged), one sentence, not too long, no damage a translation is checked for (a LaTeX command
or a URL broken, runaway repetition). An answer that fails is no summary at all: the card shows
none, and a later run asks again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from newsletter.languages import language_name
from newsletter.translate.masking import (
    MaskMismatch,
    damage,
    mask,
    prose_of,
    restore,
)
from newsletter.translate.openai_chat import ChatCompletions
from newsletter.translate.pipeline import CheckedRun, Failure, Outcome, SourceText, source_text
from newsletter.userinput import CONTROL_CHARACTERS

MAX_WORDS = 40
"""What the prompt asks for at most."""
WORD_LIMIT = 50
"""Words a summary may have (a model may run a little over what it was asked)."""
CHARACTER_LIMIT = 120
"""Characters a summary may have in a language written without spaces between words."""
_UNSPACED = {"zh", "ja", "th", "yue", "wuu", "lo", "km", "my"}

SYSTEM_PROMPT = """\
You write one-sentence summaries of scientific papers for a daily digest, in {language}
(BCP-47: {tag}). The user sends a paper's abstract.
Answer with exactly one sentence in {language}, at most {words} words, saying what the paper
does and what it finds, as plain text: no heading, no quotes, no Markdown, no line break,
nothing before or after the sentence.
Tokens like [[0]] or [[12]] stand for formulas, links, code and names: copy those you need
unchanged, each at most once, and leave out the others. Write no formula, link or code of your
own."""

_PLACEHOLDER_DEBRIS = re.compile(r"[\[［【〚⟦]\s*[\[［【〚⟦]|[\]］】〛⟧]\s*[\]］】〛⟧]")
_ABBREVIATIONS = re.compile(r"(?i)(?<!\w)(?:e\.g|i\.e|et al|vs|cf|etc|approx|resp|fig|eq)\.")
_SENTENCE_END = re.compile(r"[.!?](?=\s+\S)|[。！？](?=\s*\S)")
_WORDLIKE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_QUOTES = ('""', "“”", "‘’", "「」", "『』", "«»", "„“", "''")


class Summarizer(Protocol):
    """Writes one sentence about a (masked) abstract in one language.

    Raises `TranslatorUnavailable`, `TranslatorRefused` or `TranslatorBadAnswer`, as a
    `Translator` does.
    """

    name: str

    def summarize(self, text: str, target: str) -> str: ...


class OpenAISummarizer:
    """Any OpenAI-compatible chat-completions API: one abstract a request, one sentence back."""

    name = "openai"

    def __init__(self, chat: ChatCompletions) -> None:
        self.chat = chat

    def summarize(self, text: str, target: str) -> str:
        system = SYSTEM_PROMPT.format(language=language_name(target), tag=target, words=MAX_WORDS)
        return self.chat.complete(system, text)


class CheckedSummarizer(CheckedRun):
    """A summarizer behind masking and checks, for one run: a provider down, or refusing for
    good, is not asked again in it."""

    def __init__(self, summarizer: Summarizer) -> None:
        super().__init__()
        self.summarizer = summarizer

    def summarize(self, item: SourceText, target: str) -> Outcome:
        """The checked summary of `item` in `target` (a summary language), or why there is none."""
        blocked = self.blocked(target)
        if blocked is not None:
            return Outcome(item.key, None, *blocked)
        source = source_text(item.text)
        masked = mask(source, item.names)
        self.requests += 1
        try:
            answer = self.summarizer.summarize(masked.text, target)
        except Exception as error:  # the paper's failure, never the run's end
            return Outcome(item.key, None, *self.failed(error, target, self.summarizer))
        if not isinstance(answer, str):
            return Outcome(item.key, None, Failure.rejected, f"not a text: {type(answer)}")
        try:
            summary = _tidy(restore(answer, masked, every=False))
        except MaskMismatch as error:
            return Outcome(item.key, None, Failure.rejected, str(error))
        issues = problems(source, summary, target, item.names)
        if issues:
            return Outcome(item.key, None, Failure.rejected, "; ".join(issues))
        return Outcome(item.key, summary)


def problems(source: str, summary: str, target: str, names: Iterable[str] = ()) -> list[str]:
    """What is wrong with `summary` as a one-sentence summary of `source` in `target` (empty:
    nothing found)."""
    if not summary.strip():
        return ["the summary is empty"]
    names = tuple(names)
    found = []
    if _PLACEHOLDER_DEBRIS.search(summary) and not _PLACEHOLDER_DEBRIS.search(source):
        found.append(f"a placeholder came back broken: {_short(summary)!r}")
    # Math, links, identifiers and names must be the abstract's own, unchanged. A word of
    # letters alone may be the language's own acronym (KI, IA): only those are let through.
    foreign = [
        span
        for span in dict.fromkeys(mask(summary, names).spans)
        if span not in source and span not in names and not _WORDLIKE.fullmatch(span)
    ]
    if foreign:
        found.append(
            "not in the abstract as written: " + ", ".join(repr(_short(s)) for s in foreign[:3])
        )
    prose = prose_of(summary, names)
    found += damage(prose_of(source, names), prose)
    if _SENTENCE_END.search(_ABBREVIATIONS.sub("", prose).strip()):
        found.append(f"more than one sentence: {_short(summary, 80)!r}")
    found += _length(summary, target)
    if CONTROL_CHARACTERS.search(summary):  # nothing a text needs; PostgreSQL refuses NUL
        found.append("control characters in the summary")
    return found


def _length(summary: str, target: str) -> list[str]:
    if target.split("-")[0].lower() in _UNSPACED:
        characters = sum(1 for char in summary if not char.isspace())
        if characters > CHARACTER_LIMIT:
            return [f"too long for one sentence: {characters} characters"]
        return []
    words = len(summary.split())
    return [f"too long for one sentence: {words} words"] if words > WORD_LIMIT else []


def _tidy(answer: str) -> str:
    """One line, without the quotes a model may put around its sentence."""
    text = " ".join(answer.split())
    for opening, closing in _QUOTES:
        if len(text) > 2 and text[0] == opening and text[-1] == closing:
            text = text[1:-1].strip()
    return text


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
