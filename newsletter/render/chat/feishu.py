"""Feishu / Lark (a group's custom bot): an interactive card a post.

Limit: a custom bot's request body is at most 20 KB (Feishu's custom-bot guide); a post stops
at `BODY_BYTES`, which leaves room for the signature's `timestamp` and `sign`, and at
`MAX_ELEMENTS` elements (our own bound, to keep a card readable). Titles, abstracts and names are
`plain_text` (nothing in them is markup, so `<at id=all>` stays text); only the links line is
`lark_md`, made of our labels and URLs with their brackets percent-encoded (a title listed as
a link has its markup characters turned into look-alikes, `lark_label`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from newsletter.render.chat import common

BODY_BYTES = 19_000
MAX_ELEMENTS = 50


def _text(content: str) -> dict:
    return {"tag": "div", "text": {"tag": "plain_text", "content": content}}


_MARKUP = str.maketrans("<>[]()*_~", "＜＞［］（）＊＿～")


def lark_label(text: str) -> str:
    """A link's label inside `lark_md`, with what that markup reads (tags like `<at id=all>`,
    brackets, emphasis) turned into look-alikes that are only text."""
    return text.translate(_MARKUP)


def _links(pairs: Sequence[tuple[str, str]]) -> dict:
    content = " · ".join(f"[{label}]({url})" for label, url in pairs)
    return {"tag": "div", "text": {"tag": "lark_md", "content": content}}


class FeishuRenderer(common.ChatRenderer):
    def heading(self, digest: common.ChatDigest) -> list:
        return [("header", digest.heading)]

    def section_heading(self, section: common.ChatSection) -> list:
        return [{"tag": "hr"}, _text(f"【{section.heading}】")]

    def card(self, paper: common.ChatPaper) -> list:
        return [_text("\n".join([paper.title, *common.plain_card(paper)])), _links(paper.links)]

    def lines(self, papers: Sequence[common.ChatPaper]) -> list:
        return [_links([(lark_label(f"• {paper.title}"), paper.url)]) for paper in papers]

    def note(self, text: str, url: str | None) -> list:
        return [_links([(text, url)]) if url else _text(text)]

    def payload(self, units: list[list]) -> common.Payload:
        elements = [element for unit in units for element in unit]
        title = "arXiv digest"
        if elements and isinstance(elements[0], tuple):
            title = elements.pop(0)[1]
        card = {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title}, "template": "red"},
            "elements": elements,
        }
        return {"msg_type": "interactive", "card": card}

    def fits(self, payload: common.Payload) -> bool:
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        return size <= BODY_BYTES and len(payload["card"]["elements"]) <= MAX_ELEMENTS
