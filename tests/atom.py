"""Small arXiv Atom feeds made on the fly, in arXiv's current format, for tests of our own."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"'
    ' xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
    "  <id>https://arxiv.org/api/test</id>\n  <title>arXiv Query</title>\n"
    "  <updated>2026-11-27T00:00:00Z</updated>\n"
    "  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>\n"
    "  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
    "  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
)


@dataclass
class Entry:
    arxiv_id: str
    title: str
    published: str = "2026-11-26T17:00:00Z"
    version: int = 1
    abstract: str = "We study things."
    authors: list[str] = field(default_factory=lambda: ["Ada First", "Bo Second"])
    category: str = "cs.CV"
    comment: str | None = None

    def xml(self) -> str:
        url = f"http://arxiv.org/abs/{self.arxiv_id}v{self.version}"
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in self.authors)
        comment = f"<arxiv:comment>{escape(self.comment)}</arxiv:comment>" if self.comment else ""
        return (
            f"  <entry><id>{url}</id><title>{escape(self.title)}</title>"
            f"<updated>{self.published}</updated><published>{self.published}</published>"
            f"<summary>{escape(self.abstract)}</summary>{authors}{comment}"
            f'<link href="{url}" rel="alternate" type="text/html"/>'
            f'<link title="pdf" href="{url.replace("/abs/", "/pdf/")}" rel="related"'
            ' type="application/pdf"/>'
            f'<arxiv:primary_category term="{self.category}"/>'
            f'<category term="{self.category}" scheme="http://arxiv.org/schemas/atom"/></entry>\n'
        )


def feed(entries: list[Entry], total: int | None = None, start: int = 0) -> bytes:
    head = HEAD.format(
        per_page=len(entries), total=len(entries) if total is None else total, start=start
    )
    return (head + "".join(e.xml() for e in entries) + "</feed>\n").encode()
