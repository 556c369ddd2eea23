"""The seed's page: every topic's papers as one Markdown page, and the data behind it as JSON.

The Markdown is the format of the cv-arxiv-daily pages this service grew from, so a GitHub
Pages list can live beside the emails:

    ## Updated on 2026.11.27

    ## MLLM

    |Publish Date|Title|Abstract|PDF|Code|
    |---|---|---|---|---|
    |**2026-11-26**|**[PanGu-π: …](https://arxiv.org/abs/…)**|We …|[2611.00001](…)|**[link](…)**|

Each topic lists every paper it has matched, newest first. With a language, abstracts are the
stored translations (`newsletter translate`, or the daily job), English where there is none.
Text is stored decoded (`R&D`) and made readable here (LaTeX → Unicode, arXiv's wrapping
undone); it is escaped once, for Markdown, by `markdown_cell`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from urllib.parse import quote

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.languages import translation_language
from newsletter.models import Paper, Topic, Translation
from newsletter.sources.codelinks import link_label
from newsletter.textfmt import (
    abs_url_for,
    first_http_url,
    http_url,
    is_http_url,
    readable_paragraphs,
    readable_title,
)

NO_CODE = "–"


@dataclass(frozen=True)
class ExportedPaper:
    arxiv_id: str
    version: int
    published: date
    title: str
    """Readable: LaTeX made Unicode, whitespace collapsed."""
    authors: tuple[str, ...]
    abstract: str
    """Readable, paragraphs separated by a blank line."""
    abstract_translated: str | None
    """The stored translation into the export's language, if any."""
    abs_url: str
    pdf_url: str | None
    code_url: str | None
    """The repository if one is known, else the project page, else None."""
    code_urls: tuple[str, ...]
    primary_category: str


@dataclass(frozen=True)
class ExportedTopic:
    name: str
    anchor: str
    """The heading's anchor on GitHub (`#visual-localization`)."""
    description: str
    papers: tuple[ExportedPaper, ...]


@dataclass(frozen=True)
class Export:
    updated: date
    language: str
    """`en`, or the language abstracts are translated into where a translation is stored."""
    topics: tuple[ExportedTopic, ...]


def build_export(
    session: Session,
    *,
    updated: date,
    language: str = "en",
    topics: list[Topic] | None = None,
    limit: int | None = None,
) -> Export:
    """Every topic's (or the given topics') papers, newest first, `limit` at most per topic."""
    topics = store.list_topics(session) if topics is None else topics
    stored_language = translation_language(language)
    end = datetime.now(UTC)
    exported = []
    for topic in topics:
        papers = store.papers_linked_between(session, topic.id, None, end)[:limit]
        translations = (
            store.translations_of(session, [p.arxiv_id for p in papers], stored_language)
            if stored_language and papers
            else {}
        )
        exported.append(
            ExportedTopic(
                name=topic.name,
                anchor=github_anchor(topic.name),
                description=topic.description or "",
                papers=tuple(
                    exported_paper(paper, translations.get(paper.arxiv_id)) for paper in papers
                ),
            )
        )
    return Export(updated=updated, language=language, topics=tuple(exported))


def exported_paper(paper: Paper, translation: Translation | None) -> ExportedPaper:
    """A paper as the export shows it: readable text, only http(s) links."""
    repositories = [url for url in paper.code_urls if link_label(url) == "Code"]
    return ExportedPaper(
        arxiv_id=paper.arxiv_id,
        version=paper.version,
        published=paper.published.date(),
        title=readable_title(paper.title),
        authors=tuple(paper.authors),
        abstract="\n\n".join(readable_paragraphs(paper.abstract)),
        abstract_translated=(
            "\n\n".join(readable_paragraphs(translation.abstract)) if translation else None
        ),
        abs_url=http_url(paper.abs_url) or abs_url_for(paper.arxiv_id),
        pdf_url=http_url(paper.pdf_url) or None,
        code_url=first_http_url(repositories) or first_http_url(paper.code_urls),
        code_urls=tuple(url for url in paper.code_urls if is_http_url(url)),
        primary_category=paper.primary_category,
    )


def to_markdown(export: Export) -> str:
    """The seed's page: `## Updated on`, the topics, then a table per topic."""
    lines = [f"## Updated on {export.updated:%Y.%m.%d}", ""]
    if export.topics:
        links = [f"[{_inline(topic.name)}](#{topic.anchor})" for topic in export.topics]
        lines += ["Topics: " + " · ".join(links), ""]
    for topic in export.topics:
        lines += [f"## {_inline(topic.name)}", ""]
        if topic.description:
            lines += [_inline(topic.description), ""]
        if not topic.papers:
            lines += ["No papers yet.", ""]
            continue
        lines += ["|Publish Date|Title|Abstract|PDF|Code|", "|---|---|---|---|---|"]
        lines += [_row(paper) for paper in topic.papers]
        lines.append("")
    return "\n".join(lines)


def _row(paper: ExportedPaper) -> str:
    title = f"**{_link(markdown_cell(paper.title), paper.abs_url)}**"
    abstract = markdown_cell(paper.abstract_translated or paper.abstract)
    pdf = _link(markdown_cell(paper.arxiv_id), paper.pdf_url or paper.abs_url)
    code = f"**{_link('link', paper.code_url)}**" if paper.code_url else NO_CODE
    return f"|**{paper.published.isoformat()}**|{title}|{abstract}|{pdf}|{code}|"


def _link(text: str, url: str | None) -> str:
    """`[text](url)` for an http(s) URL; the text alone for anything else (`javascript:`,
    `data:`), which must never leave the project as a link."""
    if not url or not is_http_url(url):
        return text
    return f"[{text}]({_url(url)})"


def _url(url: str) -> str:
    """A link target that cannot end the Markdown link or the table cell early: spaces,
    brackets, pipes, quotes and control characters percent-encoded."""
    return quote(url.strip(), safe=":/?#@!$&'*+,;=%~[]")


def to_json(export: Export) -> str:
    """The data behind the page, for a page of one's own."""
    return json.dumps(asdict(export), indent=2, ensure_ascii=False, default=_json_value) + "\n"


def _json_value(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------- Markdown, escaped once

# What Markdown would read as formatting, links or HTML; `&` only where it starts an entity
# (`&amp;`, `&#38;`), so that `R&D` stays `R&D` and a literal `&amp;` stays literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])|&(?=#?\w+;)")


def markdown_cell(text: str) -> str:
    """`text` for one cell of a Markdown table: special characters escaped, paragraphs kept
    apart with `<br><br>` (a table row is one line)."""
    paragraphs = [_inline(part) for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    return "<br><br>".join(paragraphs)


def _inline(text: str) -> str:
    text = " ".join(text.split())
    return _MARKDOWN_SPECIAL.sub(lambda match: "\\" + match.group(), text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to `-`."""
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")
