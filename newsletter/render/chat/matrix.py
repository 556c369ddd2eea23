"""Matrix (a room, through the client-server API): an `m.notice` with an HTML body
(`org.matrix.custom.html`) and its plain-text `body`.

Limit: an event is at most 65,536 bytes as the homeserver stores it (the spec's size limits),
with the envelope it adds (sender, room, signatures, hashes); a post's content stops at
`CONTENT_BYTES`, well clear of that. Every text is HTML-escaped and the HTML holds only tags
the spec recommends clients allow; `m.mentions` is empty, so `@room` in a title notifies nobody.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from newsletter.render.chat import common

CONTENT_BYTES = 48_000

Piece = tuple[str, str]
"""(HTML, plain text) of a unit's part."""


def link(url: str, label: str) -> str:
    return f'<a href="{escape(url)}">{escape(label)}</a>'


class MatrixRenderer(common.ChatRenderer):
    def heading(self, digest: common.ChatDigest) -> list[Piece]:
        html = f"<h3>{escape(digest.heading)}</h3>"
        return [(html, digest.heading)]

    def section_heading(self, section: common.ChatSection) -> list[Piece]:
        return [(f"<h4>{escape(section.heading)}</h4>", f"## {section.heading}")]

    def card(self, paper: common.ChatPaper) -> list[Piece]:
        body = common.plain_card(paper)
        links = " · ".join(link(url, label) for label, url in paper.links)
        html = (
            f"<p><strong>{link(paper.url, paper.title)}</strong><br>"
            + "<br>".join(map(escape, body))
            + f"<br>{links}</p>"
        )
        plain_links = " · ".join(f"{label}: {url}" for label, url in paper.links)
        return [(html, "\n".join([paper.title, *body, plain_links]))]

    def lines(self, papers: Sequence[common.ChatPaper]) -> list[Piece]:
        items = "".join(f"<li>{link(paper.url, paper.title)}</li>" for paper in papers)
        plain = "\n".join(f"- {paper.title} {paper.url}" for paper in papers)
        return [(f"<ul>{items}</ul>", plain)]

    def note(self, text: str, url: str | None) -> list[Piece]:
        html = f"<p><em>{link(url, text) if url else escape(text)}</em></p>"
        return [(html, f"{text}: {url}" if url else text)]

    def payload(self, units: list[list[Piece]]) -> common.Payload:
        pieces = [piece for unit in units for piece in unit]
        return {
            "msgtype": "m.notice",
            "body": "\n\n".join(plain for _html, plain in pieces),
            "format": "org.matrix.custom.html",
            "formatted_body": "".join(html for html, _plain in pieces),
            "m.mentions": {},
        }

    def fits(self, payload: common.Payload) -> bool:
        return len(json.dumps(payload, ensure_ascii=False).encode()) <= CONTENT_BYTES
