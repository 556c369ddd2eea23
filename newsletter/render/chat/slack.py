"""Slack (an incoming webhook): Block Kit `header`, `section` and `context` blocks in mrkdwn.

Limits (Slack's Block Kit reference): at most 50 blocks a message, 3,000 characters a section's
text, 150 a header's; and a message whose blocks hold more than about 13,000 characters in all
is refused (`msg_blocks_too_long`), so a post stops at `MESSAGE_CHARS`. Text is escaped as
Slack asks (& < > as entities), so a title can neither link nor mention (`<!channel>`).
"""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.render.chat import common

MAX_BLOCKS = 50
SECTION_CHARS = 3000
HEADER_CHARS = 150
MESSAGE_CHARS = 12_000


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    return f"<{url}|{escape(label)}>"


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


class SlackRenderer(common.ChatRenderer):
    def heading(self, digest: common.ChatDigest) -> list:
        text = digest.heading
        if len(text) > HEADER_CHARS:
            text = text[: HEADER_CHARS - 1] + "…"
        return [{"type": "header", "text": {"type": "plain_text", "text": text}}]

    def section_heading(self, section: common.ChatSection) -> list:
        return [{"type": "divider"}, _section(f"*{escape(section.heading)}*")]

    def card(self, paper: common.ChatPaper) -> list:
        lines = [f"*{link(paper.url, paper.title)}*", *map(escape, common.plain_card(paper))]
        links = " · ".join(link(url, label) for label, url in paper.links)
        return [_section("\n".join(lines)), _context(links)]

    def lines(self, papers: Sequence[common.ChatPaper]) -> list:
        return [_section("\n".join(f"• {link(paper.url, paper.title)}" for paper in papers))]

    def note(self, text: str, url: str | None) -> list:
        return [_context(link(url, text) if url else escape(text))]

    def payload(self, units: list[list]) -> common.Payload:
        blocks = [block for unit in units for block in unit]
        first = blocks[0]
        fallback = first["text"]["text"] if first["type"] == "header" else "arXiv digest"
        return {
            "text": fallback,
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def fits(self, payload: common.Payload) -> bool:
        blocks = payload["blocks"]
        texts = [text for block in blocks for text in block_texts(block)]
        return (
            len(blocks) <= MAX_BLOCKS
            and sum(map(len, texts)) <= MESSAGE_CHARS
            and all(len(text) <= SECTION_CHARS for text in texts)
        )


def block_texts(block: dict) -> list[str]:
    """The texts of a block (its own, its elements')."""
    texts = [block["text"]["text"]] if "text" in block else []
    return texts + [element["text"] for element in block.get("elements", ())]
