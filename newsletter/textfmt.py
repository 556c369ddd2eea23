"""Small text helpers: arXiv's titles, abstracts and author lists made pleasant to read.

arXiv gives titles and abstracts as authors typed them: LaTeX math and commands, hard line
wrapping. Only the LaTeX *pieces* (`$...$` math, `\\command{...}`) go through pylatexenc; the
rest of the text is left alone, because a whole-text conversion would eat a plain `%` (a
comment to LaTeX), turn `&` into spaces and drop braces. A piece whose conversion fails or
would lose content stays as its LaTeX source: `$\\foo{x}$` reads better than a bare `x`.
Links are read here, not by pylatexenc (which fails on them): `\\href{url}{text}` is the text
and its URL after it, `\\url{url}` the URL, each only when the URL is http(s); other schemes
keep the text alone (`\\href`) or the source (`\\url`).

Nothing here raises on what authors type: pylatexenc fails on some input it does not expect
(`\\verb|x|`, a macro without its argument: IndexError, KeyError), and every such piece falls
back to its source, so one paper's text never stops a digest.

Line breaks: arXiv's older feeds wrap abstracts at ~80 columns (a bare newline: a space), and
both formats start a new paragraph with a newline and an indent (`\\n  `).

Text arrives with entities decoded once, by the XML parser (`R&amp;D` in the feed is `R&D`
here); nothing here escapes or unescapes HTML, so a literal `&amp;` an author typed stays
literal. Escaping is the job of each output (the templates, the Markdown export).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from urllib.parse import quote

from pylatexenc import latexwalker
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db
from pylatexenc.macrospec import LatexContextDb

# `$...$` (not `$$`), allowing escaped characters such as `\$` inside. As in pandoc, the
# opening `$` hugs what follows and the closing one what precedes, and no digit follows it,
# so "costs $5 and $6" stays prices.
_MATH = re.compile(r"(?<![\\$])\$(?![\s$])((?:[^$\\]|\\.)+?)(?<!\s)\$(?!\d)")

# LaTeX outside math: `\emph{x}`, `\LaTeX`, accents `\"o` / `\'{e}`, `{\"o}`, `\%`.
_COMMAND = re.compile(
    r"""\{\\[^{}$]+\}
    | \\[A-Za-z]+\*?(?:\{[^{}$]*\})*
    | \\[`'^"~=.]\s*(?:\{[A-Za-z]?\}|[A-Za-z])
    | \\[%&_\#$]""",
    re.VERBOSE,
)

# `^2`, `^{10}`, `_i`, `_{n+1}`: a sub- or superscript and its body.
_SCRIPT = re.compile(r"([\^_])(?:\{([^{}]*)\}|([A-Za-z0-9+\-]))")

_SUPERSCRIPTS = dict(zip("0123456789+-=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", strict=True))
_SUBSCRIPTS = dict(zip("0123456789+-=()aeioruvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢₒᵣᵤᵥₓ", strict=True))

# A blank line, or (arXiv's own convention, in both feed formats) a newline and an indent.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*|\n[ \t]+")

# LaTeX typography: `--` and `---` dashes, ``quotes'' (outside math), `of~$X$` ties.
_EN_DASH_RANGE = re.compile(r"(?<=\d)--(?=\d)")
_SPACED_DASH = re.compile(r"(?<=\s)---?(?=\s)")
_TIE = re.compile(r"(?<=[A-Za-z.,;:)])~(?=[A-Za-z0-9$\\(])")

# Relations and operators read better with a space each side (`0 ≤ α`, not `0 ≤α`).
_SPACED_SYMBOLS = re.compile(r"(?<=\S)\s*([≤≥≠≈≃≡∈∉⊂⊆⊃⊇→←↔⇒⇐⇔↦∝·×])\s*(?=\S)")
# `n\log n` is n·log(n), not the word "nlog": function names get a space before them.
_FUNCTION_AFTER_SYMBOL = re.compile(
    r"(?<=[\w)}²³¹⁰-₟])(?=\\(?:log|ln|exp|sin|cos|tan|max|min|sup|inf|lim|det|arg|Pr)\b)"
)

# `\href{url}{text}` (the text may hold one level of braces: `{\bf x}`) and `\url{url}`.
_HREF = r"\\href\s*\{(?P<href_url>[^{}]*)\}\s*\{(?P<href_text>(?:[^{}]|\{[^{}]*\})*)\}"
_URL_MACRO = r"\\url\s*\{(?P<url>[^{}]*)\}"
_LINK_OR_COMMAND = re.compile(f"{_HREF}|{_URL_MACRO}|{_COMMAND.pattern}", re.VERBOSE)
# Characters authors escape inside a URL that are plain in one (`\_`, `\%`, `\#`, `\&`, `\~`).
_URL_ESCAPE = re.compile(r"\\([_%#&~])")

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ELLIPSIS = "…"

log = logging.getLogger(__name__)


# Known to pylatexenc, but printed as placeholders (`<cit.>`) or not at all: left as source.
_LOSSY_MACROS = {"cite", "citep", "citet", "ref", "eqref", "label", "footnote", "footnotemark"}


class _Unconvertible(Exception):
    """A LaTeX piece that pylatexenc cannot turn into text without losing something."""


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids (NUL, most C0 controls, U+FFFE, U+FFFF):
    no page, feed or MJML document may carry them (MJML refuses the whole email)."""
    return _NOT_XML.sub("", text)


def collapse_whitespace(text: str) -> str:
    """All runs of whitespace (newlines, tabs, double spaces) → one space, ends trimmed."""
    return " ".join(text.split())


def readable_title(text: str) -> str:
    """A title with its LaTeX made readable: `PanGu-$π$` → `PanGu-π`, `$L^3$` → `L³`.

    Never raises: text this cannot read comes back as written, whitespace collapsed.
    """
    plain = collapse_whitespace(text)
    try:
        return collapse_whitespace(_convert_latex(plain))
    except Exception:  # a bug here must cost one paper its LaTeX, never a digest its send
        log.exception("LaTeX left as written in %.80r", plain)
        return plain


def readable_paragraphs(text: str) -> list[str]:
    """The paragraphs of an abstract, each unwrapped and with its LaTeX made readable."""
    paragraphs = (readable_title(part) for part in _PARAGRAPH_BREAK.split(text.strip()))
    return [paragraph for paragraph in paragraphs if paragraph]


def authors_line(authors: Sequence[str], limit: int = 3) -> str:
    """`Ada First, Bo Second, Cy Third et al.` beyond `limit` names; else all, comma-joined."""
    names = [collapse_whitespace(name) for name in authors if name.strip()]
    if len(names) > limit:
        return ", ".join(names[:limit]) + " et al."
    return ", ".join(names)


def shorten(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters at a sentence or word end, with `…` after it.

    Cuts only outside `$...$` math, so the LaTeX that is left still converts; text without
    spaces (Chinese, Japanese) is cut after a full stop or, failing that, at the limit.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    math_spans = [match.span() for match in _MATH.finditer(text)]

    def outside_math(position: int) -> bool:
        return not any(start < position < end for start, end in math_spans)

    window = text[: limit + 1]
    cut = None
    for match in re.finditer(r"[.!?。！？](?=\s|$)|[。！？]", window):
        if match.end() >= limit * 0.6 and outside_math(match.end()):
            cut = match.end()
    if cut is None:
        spaces = [
            match.start() for match in re.finditer(r"\s", window) if outside_math(match.start())
        ]
        cut = spaces[-1] if spaces and spaces[-1] >= limit * 0.5 else None
    if cut is None:
        cut = limit
        while cut > 0 and not outside_math(cut):
            cut -= 1
        cut = cut or limit
    return text[:cut].rstrip(" ,;:-") + " " + ELLIPSIS


@lru_cache(maxsize=8192)
def _convert_latex(text: str) -> str:
    """Convert math pieces first (they may contain commands), then commands outside them.

    Cached: the same titles and abstracts are rendered for every segment that shows them,
    and LaTeX parsing is most of a render's cost.
    """
    pieces = []
    text = " ".join(word if "/" in word else _TIE.sub(" ", word) for word in text.split(" "))
    for is_math, piece in _split_math(text):
        if is_math:
            pieces.append(_convert_piece(piece, math=True))
        else:
            pieces.append(_typography(_convert_commands(piece)))
    return "".join(pieces)


def _convert_commands(text: str) -> str:
    """Commands outside math, each converted on its own; links read here (see the top)."""
    return _LINK_OR_COMMAND.sub(_convert_command, text)


def _convert_command(match: re.Match[str]) -> str:
    if match.group("href_url") is not None:
        url = _URL_ESCAPE.sub(r"\1", match.group("href_url").strip())
        text = _convert_commands(match.group("href_text")).strip()
        if not is_http_url(url):
            return text or match.group()  # the words, never a link to another scheme
        return url if text in ("", url) else f"{text} ({url})"
    if match.group("url") is not None:
        url = _URL_ESCAPE.sub(r"\1", match.group("url").strip())
        return url if is_http_url(url) else match.group()
    return _convert_piece(match.group())


def is_http_url(url: str) -> bool:
    """Whether `url` is an absolute http(s) URL with a host: the only links that leave us."""
    return bool(re.match(r"https?://[^\s/?#]", url, re.IGNORECASE))


def abs_url_for(arxiv_id: str) -> str:
    """A paper's page on arXiv, without version, so it always shows the latest."""
    return f"https://arxiv.org/abs/{quote(arxiv_id, safe='/')}"


def http_url(url: str | None) -> str:
    """The URL, trimmed, if it is http(s), else "": a `javascript:` or `data:` link from a
    paper's feed must never reach a page, a feed or an export."""
    url = (url or "").strip()
    return url if is_http_url(url) else ""


def first_http_url(urls: Iterable[str]) -> str | None:
    """The first of `urls` that is http(s), trimmed; None if none is. Checked before it is
    chosen: a `javascript:` link first in the list must not hide the good one after it."""
    return next((url for url in map(http_url, urls) if url), None)


def _typography(text: str) -> str:
    """LaTeX's dashes, quotes and ties outside math, as the characters they stand for."""
    text = _EN_DASH_RANGE.sub("–", text)
    text = _SPACED_DASH.sub(lambda match: "—" if match.group() == "---" else "–", text)
    if "``" in text:
        text = text.replace("``", "“").replace("''", "”")
    return text


def _split_math(text: str) -> Iterator[tuple[bool, str]]:
    """The text as (is_math, piece) pairs; math pieces keep their `$` delimiters."""
    position = 0
    for match in _MATH.finditer(text):
        yield False, text[position : match.start()]
        yield True, match.group()
        position = match.end()
    yield False, text[position:]


@lru_cache(maxsize=8192)  # the same formulas recur in many abstracts and in their shortenings
def _convert_piece(source: str, *, math: bool = False) -> str:
    """One LaTeX piece as text, or the piece unchanged when that would lose content."""
    try:
        latex = _unicode_scripts(source) if math else source
        if math:
            latex = _FUNCTION_AFTER_SYMBOL.sub(" ", latex)
        _check_convertible(latex)
        converted = _latex_to_text().latex_to_text(latex, latex_context=_walker_context())
    except Exception:  # _Unconvertible, and pylatexenc's errors: IndexError, KeyError, …
        return source
    if not converted.strip() and source.strip("$ "):  # `$\\$` would vanish from a title
        return source
    if math:
        converted = _SPACED_SYMBOLS.sub(r" \1 ", converted)
    return converted


def _unicode_scripts(math: str) -> str:
    """`L^3` → `L³`, `x_{12}` → `x₁₂`; a longer script with no Unicode form is unconvertible."""

    def replace(match: re.Match[str]) -> str:
        operator, braced, single = match.groups()
        body = braced if braced is not None else single
        table = _SUPERSCRIPTS if operator == "^" else _SUBSCRIPTS
        if body and all(char in table for char in body):
            return "".join(table[char] for char in body)
        if len(body) == 1:
            return operator + body  # `x^a` reads fine as it is
        # pylatexenc would print `x^{n+1}` as `x^n+1`: a different formula.
        raise _Unconvertible(match.group())

    return _SCRIPT.sub(replace, math)


def _check_convertible(latex: str) -> None:
    """Raise unless every macro is known and nothing (a `%` comment, `&`) would vanish."""
    walker = latexwalker.LatexWalker(latex, latex_context=_walker_context(), tolerant_parsing=False)
    nodes, _, _ = walker.get_latex_nodes()
    for node in _walk(nodes):
        if isinstance(node, latexwalker.LatexCommentNode):
            raise _Unconvertible("comment")
        if isinstance(node, latexwalker.LatexMacroNode) and (
            not _known_macro(node.macroname) or node.macroname in _LOSSY_MACROS
        ):
            raise _Unconvertible(node.macroname)
        if isinstance(node, latexwalker.LatexEnvironmentNode):
            raise _Unconvertible(node.environmentname)
        if isinstance(node, latexwalker.LatexSpecialsNode) and node.specials_chars == "&":
            raise _Unconvertible("&")


def _walk(nodes: Sequence[latexwalker.LatexNode | None]) -> Iterator[latexwalker.LatexNode]:
    for node in nodes:
        if node is None:
            continue
        yield node
        yield from _walk(getattr(node, "nodelist", None) or [])
        arguments = getattr(node, "nodeargd", None)
        if arguments is not None:
            yield from _walk(arguments.argnlist or [])


def _known_macro(name: str) -> bool:
    return _text_context().get_macro_spec(name) is not None


@lru_cache(maxsize=1)
def _walker_context() -> LatexContextDb:
    # What LatexWalker parses with by default, built once: it rebuilds it for every parse, which
    # cost more than the parse itself.
    return latexwalker.get_default_latex_context_db()


@lru_cache(maxsize=1)
def _text_context() -> LatexContextDb:
    context = get_default_latex_context_db()
    # pylatexenc knows these but prints nothing for them: a norm `\|x\|` would lose its bars.
    context.add_context_category(
        "newsletter",
        macros=[
            MacroTextSpec("|", "‖"),
            MacroTextSpec("colon", ": "),
            MacroTextSpec("/", ""),
            MacroTextSpec("@", ""),
        ],
        prepend=True,
    )
    return context


@lru_cache(maxsize=1)
def _latex_to_text() -> LatexNodes2Text:
    # math_mode="text": formulas as readable text, without `$` around them. Spaces as in the
    # source, so that `\log n` stays two words.
    return LatexNodes2Text(
        latex_context=_text_context(), math_mode="text", strict_latex_spaces="based-on-source"
    )
