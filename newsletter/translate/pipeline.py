"""Translating safely: mask, translate in batches, restore, check; a text that fails the check is
tried once more (alone, in a request of its own), then given up with the reason. When the
translator is unreachable after its retries, or refuses for good (a bad key, a spent quota),
the run stops asking it: what is left stays untranslated this time.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from newsletter.translate.base import (
    Translator,
    TranslatorBadAnswer,
    TranslatorRefused,
    TranslatorUnavailable,
    batches,
)
from newsletter.translate.masking import Masked, MaskMismatch, mask, problems, restore
from newsletter.userinput import CONTROL_CHARACTERS

log = logging.getLogger(__name__)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Emphasis changes nothing a reader of the rendered text sees: translate the words inside it.
_EMPHASIS = re.compile(r"\\(?:emph|textit|textbf|textsl|underline)\{([^{}$\\]*)\}")


class Failure(enum.StrEnum):
    unavailable = "unavailable"
    """The translator did not answer in time, or the run stopped asking it."""
    refused = "refused"
    """The translator refused the request (a language it lacks, a bad key)."""
    rejected = "rejected"
    """The translation came back damaged, twice."""


@dataclass(frozen=True)
class SourceText:
    """One English text to translate; `names` are the paper's own, kept as they are."""

    key: Hashable
    text: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    key: Hashable
    text: str | None
    """The checked translation; None when there is none (see `failure` and `problem`)."""
    failure: Failure | None = None
    problem: str | None = None


def report_line(done: str, per_language: Counter[str], failed: Mapping, left: str) -> str:
    """`Translated 12 abstract(s) (de 6, zh 6); 2 left in English: …`: what a run did (`done`
    with the count in it), by language, then what it did not (`left`) and the first reason why;
    "" for nothing."""
    if not per_language and not failed:
        return ""
    languages = ", ".join(f"{lang} {n}" for lang, n in sorted(per_language.items()))
    text = done.format(sum(per_language.values()))
    text += f" ({languages})" if languages else ""
    if failed:
        reasons = sorted({outcome.problem or "" for outcome in failed.values()})
        text += f"; {len(failed)} {left}: {reasons[0][:300]}"
    return text


def source_text(text: str) -> str:
    """An abstract as it is sent: lines unwrapped, paragraphs kept, emphasis unwrapped."""
    paragraphs = (" ".join(part.split()) for part in _PARAGRAPH_BREAK.split(text.strip()))
    return _EMPHASIS.sub(r"\1", "\n\n".join(part for part in paragraphs if part))


class CheckedRun:
    """What one run (a digest, a command) learns of a provider as it asks: whether to stop
    asking it, which languages it refused, how many calls it took."""

    def __init__(self) -> None:
        self.halted: tuple[Failure, str] | None = None
        """Why this run stopped asking the provider, once it has."""
        self.refused_languages: dict[str, str] = {}
        """Languages the provider refused in this run, and what it said: not asked again."""
        self.requests = 0
        """Calls made of the provider (each one request or more, by provider)."""

    def blocked(self, target: str) -> tuple[Failure, str] | None:
        """Why a text into `target` is not even asked for in this run, if it is not."""
        if self.halted is not None:
            return self.halted
        if target in self.refused_languages:
            return Failure.refused, self.refused_languages[target]
        return None

    def failed(self, error: Exception, target: str, provider: object) -> tuple[Failure, str]:
        """What a call that raised `error` means for its texts, noting what it means for the
        rest of the run (a provider down or refusing for good is not asked again)."""
        if isinstance(error, TranslatorBadAnswer):
            return Failure.rejected, str(error)
        if isinstance(error, TranslatorRefused):
            if error.fatal:
                self.halted = (Failure.refused, str(error))
            else:
                self.refused_languages[target] = str(error)
            return Failure.refused, str(error)
        if isinstance(error, TranslatorUnavailable):
            self.halted = (Failure.unavailable, str(error))
            return Failure.unavailable, str(error)
        # A provider's answer its adapter could not read: not the run's end.
        log.debug("%s: unreadable answer", type(provider).__name__, exc_info=error)
        return Failure.rejected, f"unreadable answer ({type(error).__name__}: {error})"


class CheckedTranslator(CheckedRun):
    """A translator behind masking and checks, for one run (a digest, a command)."""

    def __init__(self, translator: Translator, batch_size: int = 8) -> None:
        super().__init__()
        self.translator = translator
        self.batch_size = max(batch_size, 1)

    def translate(self, items: Sequence[SourceText], target: str) -> list[Outcome]:
        """One outcome per item, in order: the checked translation, or why there is none."""
        final: dict[Hashable, Outcome] = {}
        pending = list(items)
        for attempt, size in ((1, self.batch_size), (2, 1)):
            again: list[SourceText] = []
            for batch in batches(pending, size):
                for outcome, item in zip(self._batch(batch, target), batch, strict=True):
                    if outcome.failure is Failure.rejected and attempt == 1:
                        again.append(item)
                    else:
                        final[item.key] = outcome
            pending = again
        return [final[item.key] for item in items]

    def _batch(self, batch: list[SourceText], target: str) -> list[Outcome]:
        blocked = self.blocked(target)
        if blocked is not None:
            return [Outcome(item.key, None, *blocked) for item in batch]
        sources = [source_text(item.text) for item in batch]
        masked = [mask(text, item.names) for text, item in zip(sources, batch, strict=True)]
        self.requests += 1
        try:
            answers = self.translator.translate([m.text for m in masked], target)
            if len(answers) != len(batch):
                raise TranslatorBadAnswer(f"{len(answers)} translations for {len(batch)} texts")
        except Exception as error:  # every failure is these texts', never the run's end
            failure, reason = self.failed(error, target, self.translator)
            return [Outcome(item.key, None, failure, reason) for item in batch]
        return [
            _checked(item, source, masked_text, answer, target)
            for item, source, masked_text, answer in zip(
                batch, sources, masked, answers, strict=True
            )
        ]


def _checked(item: SourceText, source: str, masked: Masked, answer: object, target: str) -> Outcome:
    """The restored translation if it passes every check, else what is wrong with it."""
    if not isinstance(answer, str):
        return Outcome(item.key, None, Failure.rejected, f"not a text: {type(answer).__name__}")
    try:
        restored = restore(answer, masked)
    except MaskMismatch as error:
        return Outcome(item.key, None, Failure.rejected, str(error))
    issues = problems(source, restored, target, item.names)
    if CONTROL_CHARACTERS.search(restored):  # nothing a text needs; PostgreSQL refuses NUL
        issues.append("control characters in the translation")
    if issues:
        return Outcome(item.key, None, Failure.rejected, "; ".join(issues))
    return Outcome(item.key, restored)
