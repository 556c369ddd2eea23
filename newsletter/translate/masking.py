"""What a translator must not touch is swapped for placeholders before, put back after, and checked.

Protected: LaTeX math (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`), LaTeX commands with their
arguments (`\\method{}`, `\\href{…}{…}`, `\\cite{…}`, accents with their word), brace groups,
URLs, e-mail addresses, references (arXiv ids with their `arXiv:`, DOIs with their `doi:`, ISBNs,
PubMed ids), code identifiers (`snake_case`, `dotted.names`, `` `code` ``) and names: the
paper's own (what its title puts before a colon: "PanGu-π: …") and coined words (ALLCAPS,
CamelCase, letters mixed with digits: GRPO, AlphaGRPO, GPT-4o, Qwen2.5-VL).

Each protected span becomes `[[n]]`; translators leave such tokens alone, though some turn the
brackets full-width or pad them with spaces, which `restore` accepts. What comes back is checked
(`problems`) for the failures seen on the pages that inspired this project: `\\方法｛｝` (a
macro translated, its braces full-width), `https：//` (a full-width colon in a URL), runaway
repetition ("Leververs Leververs"), names translated word by word, and a length that makes no
sense for the language.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from newsletter.errors import TranslationError

PLACEHOLDER = "[[{}]]"

_OPENING = "[［【〚⟦"
_CLOSING = "]］】〛⟧"
_PLACEHOLDER_FOUND = re.compile(
    rf"[{re.escape(_OPENING)}]\s*[{re.escape(_OPENING)}]\s*(\d+)\s*"
    rf"[{re.escape(_CLOSING)}]\s*[{re.escape(_CLOSING)}]"
)

_ASCII_LETTERS = set(string.ascii_letters)
_ESCAPED_CHARACTERS = set("%&_#$\\{}, ;!|")
_ACCENTS = set("'`^\"~=.")
_ACCENT_COMMANDS = {"c", "v", "u", "H", "r", "k", "d", "b", "t", "i", "j", "l", "L", "o", "O"}
_ACCENT_COMMANDS |= {"ss", "ae", "AE", "aa", "AA", "oe", "OE"}
_TRAILING = ".,;:!?'\""

# A URL ends at whitespace, quotes, or CJK text and punctuation (a translation's "。" after it).
_URL_CHARS = r"[^\s<>\"'`\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
_URL = re.compile(rf"(?i)\b(?:https?|ftp)://{_URL_CHARS}+|\bwww\.{_URL_CHARS}+")
_BARE_URL = re.compile(
    rf"(?i)\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|ai|dev|edu|gov|app|co|me|info|xyz|page)/{_URL_CHARS}*"
)
_EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

# References a reader copies into a search box: masked with their prefix, so that a translator
# writing "arXiv：2312.17296", "arXiv: 2312. 17296" or "阿尔西夫:2312.17296" cannot break one.
# A bare number is an arXiv id only in the shape arXiv gives it (YYMM of 2007 on, four digits
# after the dot until 2014 and five since), so that 12.5, 3.14159 or 2024.5 stay translatable.
_NEW_ARXIV_ID = r"\d{4}\.\d{4,5}(?:v\d+)?"
_BARE_NEW_ARXIV_ID = (
    r"(?:(?:0[7-9]|1[0-4])(?:0[1-9]|1[0-2])\.\d{4}|(?:1[5-9]|[2-9]\d)(?:0[1-9]|1[0-2])\.\d{5})"
    r"(?:v\d+)?"
)
# Before April 2007: archive(.subject)/YYMMNNN; the archives are a closed list.
_OLD_ARCHIVES = (
    "acc-phys|adap-org|alg-geom|ao-sci|astro-ph|atom-ph|bayes-an|chao-dyn|chem-ph|cmp-lg|"
    "comp-gas|cond-mat|cs|dg-ga|funct-an|gr-qc|hep-ex|hep-lat|hep-ph|hep-th|math-ph|math|"
    "mtrl-th|nlin|nucl-ex|nucl-th|patt-sol|physics|plasm-ph|q-alg|q-bio|quant-ph|solv-int|"
    "supr-con"
)
_OLD_ARXIV_ID = (
    rf"(?:{_OLD_ARCHIVES})(?:\.[A-Za-z]+(?:-[A-Za-z]+)?)?/\d\d(?:0[1-9]|1[0-2])\d{{3}}(?:v\d+)?"
)
# ASCII on purpose: an id right after or before CJK text ("见arXiv:…") is still one.
_ID_START, _ID_END = r"(?<![A-Za-z0-9_.+-])", r"(?![A-Za-z0-9_/]|\.\d)"
_REFERENCES = (
    re.compile(rf"(?i){_ID_START}arxiv\s*[:：]?\s*(?:{_NEW_ARXIV_ID}|{_OLD_ARXIV_ID}){_ID_END}"),
    re.compile(rf"(?i){_ID_START}(?:{_BARE_NEW_ARXIV_ID}|{_OLD_ARXIV_ID}){_ID_END}"),
    re.compile(
        rf"(?i)(?<![A-Za-z0-9_/.])(?:doi\s*[:：]?\s*)?10\.\d{{4,9}}(?:\.\d+)*/{_URL_CHARS}+"
    ),
    re.compile(rf"{_ID_START}ISBN(?:-1[03])?\s*[:：]?\s*\d[\d-]{{8,15}}[\dXx]{_ID_END}"),
    re.compile(rf"{_ID_START}(?:PMID|PMCID)\s*[:：]?\s*(?:PMC)?\d{{1,9}}{_ID_END}"),
)
_BACKTICKED = re.compile(r"`[^`\n]+`")
_SNAKE_CASE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b(?:\(\))?")
_DOTTED_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]+(?:\.[A-Za-z_][A-Za-z0-9_]+)+\b(?:\(\))?")
_WORD = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9]+(?:[.+][A-Za-z0-9]+)*(?:-[A-Za-z0-9]+(?:[.+][A-Za-z0-9]+)*)*"
)
_NOT_COINED = re.compile(r"\d+(?:st|nd|rd|th|s|x)?")

# Title words before a colon that head a paper's kind, not its system's name.
_HEADINGS = {
    "position", "survey", "review", "tutorial", "erratum", "corrigendum", "comment", "reply",
    "editorial", "perspective", "overview", "introduction", "preface", "note", "letter",
    "commentary", "keynote", "opinion", "report", "correction", "addendum", "retraction",
}  # fmt: skip


class MaskMismatch(TranslationError):
    """The placeholders did not all come back exactly once."""


@dataclass(frozen=True)
class Masked:
    """A text as the translator sees it: `spans[n]` stands where `[[n]]` is."""

    text: str
    spans: tuple[str, ...]


# ---------------------------------------------------------------- names


def system_names(title: str) -> tuple[str, ...]:
    """The name a title gives its system before a colon ("PanGu-π: …" → PanGu-π), if any.

    One word is a name unless it heads a kind of paper ("Position: …", "Survey: …"); two to
    four capitalised words are one when a word is coined or a number ("Grounding DINO",
    "Stable Diffusion 3"); a longer head is a phrase ("Beyond GRPO and On-Policy Distillation").
    """
    head, colon, _ = " ".join(title.split()).partition(": ")
    head = head.strip()
    if not colon or not head or len(head) > 60:
        return ()
    words = head.split()
    if len(words) == 1:
        return () if head.casefold() in _HEADINGS else (head,)
    if len(words) > 4 or not all(word[:1].isupper() or word[:1].isdigit() for word in words):
        return ()
    if any(word.isdigit() or _coined_word(word) for word in words):
        return (head,)
    return ()


def _coined_word(word: str) -> bool:
    return any(_coined(part) for part in word.strip(_TRAILING).split("-") if part)


def _coined(part: str) -> bool:
    """GRPO, AlphaGRPO, iPhone, LLMs, GPT4o, Qwen2.5, 3D; not 1st, 1990s, 10x, We, the."""
    letters = sum(1 for char in part if char in _ASCII_LETTERS)
    digits = sum(1 for char in part if char.isdigit())
    if digits and letters:
        return not _NOT_COINED.fullmatch(part)
    uppers = sum(1 for char in part if "A" <= char <= "Z")
    return uppers >= 2 or re.search(r"[a-z][A-Z]", part) is not None


# ---------------------------------------------------------------- masking


def mask(text: str, names: Iterable[str] = ()) -> Masked:
    """The text with every protected span replaced by `[[n]]`, n counting from 0 in order."""
    claimed = _Claims()
    for match in _PLACEHOLDER_FOUND.finditer(text):  # a lookalike in the source itself
        claimed.add(match.start(), match.end())
    for name in sorted({name for name in names if name.strip()}, key=len, reverse=True):
        for match in re.finditer(rf"(?<![\w-]){re.escape(name)}(?!\w)", text):
            claimed.add(match.start(), match.end())
    for start, end in _latex_spans(text):
        claimed.add(start, end)
    for pattern in (_URL, _BARE_URL, _EMAIL, *_REFERENCES, _BACKTICKED, _SNAKE_CASE, _DOTTED_NAME):
        for match in pattern.finditer(text):
            claimed.add(*_trimmed(text, match.start(), match.end()))
    for start, end in _coined_spans(text):
        claimed.add(start, end)
    pieces, spans, position = [], [], 0
    for start, end in claimed.sorted():
        pieces.append(text[position:start])
        pieces.append(PLACEHOLDER.format(len(spans)))
        spans.append(text[start:end])
        position = end
    pieces.append(text[position:])
    return Masked("".join(pieces), tuple(spans))


def restore(translated: str, masked: Masked, *, every: bool = True) -> str:
    """The translation with every placeholder replaced by its span; each must occur once (with
    `every=False`, at most once: a summary keeps only some)."""
    counts = Counter(int(match.group(1)) for match in _PLACEHOLDER_FOUND.finditer(translated))
    total = len(masked.spans)
    missing = [n for n in range(total) if counts[n] == 0] if every else []
    repeated = sorted(n for n, count in counts.items() if n < total and count > 1)
    unknown = sorted(n for n in counts if n >= total)
    if missing or repeated or unknown:
        problems = []
        if missing:
            problems.append("missing " + _listed(masked, missing))
        if repeated:
            problems.append("repeated " + _listed(masked, repeated))
        if unknown:
            problems.append("unknown " + ", ".join(PLACEHOLDER.format(n) for n in unknown))
        raise MaskMismatch("placeholders " + "; ".join(problems))
    return _PLACEHOLDER_FOUND.sub(lambda match: masked.spans[int(match.group(1))], translated)


def _listed(masked: Masked, numbers: list[int], limit: int = 3) -> str:
    shown = [f"{PLACEHOLDER.format(n)} ({_short(masked.spans[n])})" for n in numbers[:limit]]
    more = f" and {len(numbers) - limit} more" if len(numbers) > limit else ""
    return ", ".join(shown) + more


class _Claims:
    """Non-overlapping spans. A span that holds earlier ones whole takes their place (a URL
    holding a name, `\\href{…}` holding a URL, "$β$-OPSD" holding `$β$`); one that only
    overlaps an earlier span is dropped.
    """

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        overlapping = [(s, e) for s, e in self._spans if start < e and s < end]
        if any(s < start or e > end for s, e in overlapping):
            return
        self._spans = [span for span in self._spans if span not in overlapping]
        self._spans.append((start, end))

    def sorted(self) -> list[tuple[int, int]]:
        return sorted(self._spans)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A URL-like match without the sentence's punctuation or an unopened closing bracket."""
    while end > start:
        last = text[end - 1]
        if last in _TRAILING:
            end -= 1
        elif last in ")]}" and _unbalanced(text[start:end], last):
            end -= 1
        else:
            break
    return start, end


def _unbalanced(piece: str, closing: str) -> bool:
    opening = {")": "(", "]": "[", "}": "{"}[closing]
    return piece.count(closing) > piece.count(opening)


def _coined_spans(text: str) -> Iterator[tuple[int, int]]:
    """Runs of coined parts within hyphenated words: `GPT-4o` whole, `LLM` of `LLM-based`."""
    for match in _WORD.finditer(text):
        position, run_start, run_end = match.start(), None, None
        for part in match.group().split("-"):
            part_end = position + len(part)
            if part and _coined(part):
                run_start = position if run_start is None else run_start
                run_end = part_end
            elif run_start is not None:
                yield run_start, run_end
                run_start = None
            position = part_end + 1
        if run_start is not None:
            yield run_start, run_end


# ---------------------------------------------------------------- LaTeX


def _latex_spans(text: str) -> Iterator[tuple[int, int]]:
    """Math, commands with their arguments, accented words, escapes and brace groups."""
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        span: tuple[int, int] | None = None
        if char == "$":
            span = _math_span(text, position)
        elif char == "\\" and position + 1 < length:
            span = _backslash_span(text, position)
        elif char == "{":
            end = _group_end(text, position, "{", "}")
            span = (position, end) if end else None
        if span is None:
            position += 1
            continue
        yield span
        position = max(span[1], position + 1)


def _math_span(text: str, start: int) -> tuple[int, int] | None:
    if text.startswith("$$", start):
        end = text.find("$$", start + 2)
        return (start, end + 2) if end != -1 else None
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == "$":
            return (start, position + 1) if position > start + 1 else None
        if text.startswith("\n\n", position):
            return None  # a lone dollar: math never spans paragraphs
        position += 1
    return None


def _backslash_span(text: str, start: int) -> tuple[int, int] | None:
    following = text[start + 1]
    if following in "([":
        closing = "\\)" if following == "(" else "\\]"
        end = text.find(closing, start + 2)
        return (start, end + 2) if end != -1 else None
    if following in _ACCENTS:
        return _word_around(text, start, start + 2)
    if following in _ESCAPED_CHARACTERS:
        return (start, start + 2)
    if following not in _ASCII_LETTERS:
        return None  # `\方法`: not LaTeX, and left in sight for `problems`
    end = start + 1
    while end < len(text) and text[end] in _ASCII_LETTERS:
        end += 1
    name = text[start + 1 : end]
    if end < len(text) and text[end] == "*":
        end += 1
    if name == "begin":
        environment = re.match(r"\{([^{}]*)\}", text[end:])
        if environment:
            close = text.find(f"\\end{{{environment.group(1)}}}", end)
            if close != -1:
                return (start, close + len(environment.group(1)) + 6)
    while end < len(text) and text[end] in "{[":
        closing = "}" if text[end] == "{" else "]"
        group_end = _group_end(text, end, text[end], closing)
        if group_end is None:
            break
        end = group_end
    if name in _ACCENT_COMMANDS:
        return _word_around(text, start, end)
    return (start, end)


def _group_end(text: str, start: int, opening: str, closing: str) -> int | None:
    """The index after the bracket that closes the one at `start`; None when unbalanced."""
    depth, position = 0, start
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return position + 1
        elif text.startswith("\n\n", position):
            return None
        position += 1
    return None


def _word_around(text: str, start: int, end: int) -> tuple[int, int]:
    """An accent with its whole word: `Schr\\"odinger`, `Erd\\H{o}s`, `{\\"u}ber`."""
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "{"):
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] in "{}\\'`^\"~=."):
        end += 1
    while end > start + 2 and text[end - 1] in ".'\"":
        end -= 1
    return start, end


# ---------------------------------------------------------------- checking


_UNITS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\d_]+")
_DOUBLED_WORD = re.compile(r"(?i)(?<!\w)([^\W\d_]{4,})(?:\s+\1)+(?!\w)")
_LOOP = re.compile(r"(.{2,60}?)\1{2,}", re.DOTALL)
_BROKEN_URL = re.compile(r"(?i)\b(?:https?|ftp)\s*[:：]|[:：]\s*[/／]{2}|\bwww\s*[。．]")
_BRACES = set("{}｛｝")
BACKSLASH = "\\"
_CJK_TARGETS = {"zh", "ja", "ko", "yue", "wuu"}


def problems(source: str, translation: str, target: str, names: Iterable[str] = ()) -> list[str]:
    """What is wrong with a translation of `source` into `target` (empty: nothing found).

    Works on final texts, so it also catches damage that never went through placeholders.
    """
    if not translation.strip():
        return ["the translation is empty"]
    names = tuple(names)
    source_masked = mask(source, names)
    found = [
        f"{_short(span)!r} did not come back unchanged"
        for span, count in Counter(source_masked.spans).items()
        if translation.count(span) < count
    ][:3]
    source_prose = _prose(source_masked)
    prose = _prose(mask(translation, names))
    found += damage(source_prose, prose)
    found += _length(source_prose, prose, target)
    return found


def damage(source_prose: str, prose: str) -> list[str]:
    """What a model's text broke that its source had whole: LaTeX commands, braces, URLs, and
    runaway repetition. Both are prose (`prose_of`): the text outside the protected spans."""
    found = []
    if BACKSLASH in prose and BACKSLASH not in source_prose:
        found.append(
            f"a LaTeX command came back translated or broken: {_around(prose, BACKSLASH)!r}"
        )
    braces = _BRACES.intersection(prose) - _BRACES.intersection(source_prose)
    if braces:
        found.append(f"braces came back outside a command: {_around(prose, min(braces))!r}")
    if len(_BROKEN_URL.findall(prose)) > len(_BROKEN_URL.findall(source_prose)):
        found.append(f"a URL came back damaged: {_around_match(prose, _BROKEN_URL)!r}")
    found += _repetition(source_prose, prose)
    return found


def prose_of(text: str, names: Iterable[str] = ()) -> str:
    """`text` without what `mask` protects in it: the words a model may write freely."""
    return _prose(mask(text, names))


def _prose(masked: Masked) -> str:
    return _PLACEHOLDER_FOUND.sub(" ", masked.text)


def _repetition(source: str, translation: str) -> list[str]:
    doubled = {m.group(1).casefold() for m in _DOUBLED_WORD.finditer(translation)}
    doubled -= {m.group(1).casefold() for m in _DOUBLED_WORD.finditer(source)}
    if doubled:
        word = sorted(doubled)[0]
        return [f"a word repeats itself: {word!r} back to back"]
    loops = {m.group(1) for m in _LOOP.finditer(translation) if _has_letter(m.group(1))}
    loops -= {m.group(1) for m in _LOOP.finditer(source)}
    if loops:
        return [f"runaway repetition: {_short(sorted(loops)[0])!r} over and over"]
    repeats, allowed = _most_repeated(translation, 4), 2 * _most_repeated(source, 2) + 3
    if repeats > allowed:
        return [f"runaway repetition: a phrase occurs {repeats} times (at most {allowed} expected)"]
    return []


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)


def _most_repeated(text: str, size: int) -> int:
    """How often the most frequent run of `size` units (words; single CJK characters) occurs."""
    units = [unit.casefold() for unit in _UNITS.findall(text)]
    grams = Counter(tuple(units[i : i + size]) for i in range(len(units) - size + 1))
    return max(grams.values(), default=0)


def _length(source: str, translation: str, target: str) -> list[str]:
    """A translation far shorter or longer than its language makes likely (long texts only)."""
    source_chars = sum(1 for char in source if not char.isspace())
    if source_chars < 80:
        return []
    ratio = sum(1 for char in translation if not char.isspace()) / source_chars
    low, high = (0.15, 1.2) if target.split("-")[0].lower() in _CJK_TARGETS else (0.4, 2.5)
    if not low <= ratio <= high:
        return [f"the length is implausible: {ratio:.2f} times the original's"]
    return []


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _around(text: str, needle: str, width: int = 12) -> str:
    index = text.find(needle)
    return text[max(index - width, 0) : index + width].strip()


def _around_match(text: str, pattern: re.Pattern[str], width: int = 12) -> str:
    match = pattern.search(text)
    return _around(text, match.group()) if match else ""
