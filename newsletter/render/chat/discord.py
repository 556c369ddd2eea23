"""Discord (a channel webhook): one embed a paper, under the heading's embed.

Limits (Discord's embed limits): at most 10 embeds a message and 6,000 characters in all their
titles, descriptions, field names and values, footers and author names; a title 256, a
description 4,096, an author's name 256. Markdown characters in the text are escaped, and
`allowed_mentions` is empty: a title with `@everyone` or `<@id>` pings nobody.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from newsletter.render.chat import common

MAX_EMBEDS = 10
TOTAL_CHARS = 6000
TITLE_CHARS = 256
DESCRIPTION_CHARS = 4096
AUTHOR_CHARS = 256
COLOUR = 0xB31B1B  # arXiv's red

_MARKDOWN = re.compile(r"([\\*_~`|>#\[\]()<@])")


def escape(text: str) -> str:
    """Markdown, headings, quotes, links, emoji and mentions shown as typed."""
    return _MARKDOWN.sub(r"\\\1", text)


def link(url: str, label: str) -> str:
    return f"[{escape(label)}]({url})"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DiscordRenderer(common.ChatRenderer):
    def heading(self, digest: common.ChatDigest) -> list:
        embed = {"title": _cut(escape(digest.heading), TITLE_CHARS), "color": COLOUR}
        if digest.web_url:
            embed["url"] = digest.web_url
        return [embed]

    def section_heading(self, section: common.ChatSection) -> list:
        return [{"author": {"name": _cut(section.heading, AUTHOR_CHARS)}}]

    def card(self, paper: common.ChatPaper) -> list:
        links = " · ".join(link(url, label) for label, url in paper.links)
        text = "\n".join([*map(escape, common.plain_card(paper)), links])
        embed = {
            "title": _cut(escape(paper.title), TITLE_CHARS),
            "url": paper.url,
            "description": _cut(text, DESCRIPTION_CHARS),
            "color": COLOUR,
        }
        return [embed]

    def lines(self, papers: Sequence[common.ChatPaper]) -> list:
        text = "\n".join(f"• {link(paper.url, paper.title)}" for paper in papers)
        return [{"description": _cut(text, DESCRIPTION_CHARS)}]

    def note(self, text: str, url: str | None) -> list:
        return [{"description": link(url, text) if url else escape(text)}]

    def payload(self, units: list[list]) -> common.Payload:
        embeds: list[dict] = []
        for unit in units:
            embeds.extend(_merged(unit))
        return {"embeds": embeds, "allowed_mentions": {"parse": []}}

    def fits(self, payload: common.Payload) -> bool:
        embeds = payload["embeds"]
        return len(embeds) <= MAX_EMBEDS and sum(map(embed_chars, embeds)) <= TOTAL_CHARS


def _merged(unit: list[dict]) -> list[dict]:
    """A section's heading (an author line) goes on the embed after it, not one of its own."""
    if len(unit) > 1 and set(unit[0]) == {"author"}:
        return [{**unit[1], "author": unit[0]["author"]}, *unit[2:]]
    return unit


def embed_chars(embed: dict) -> int:
    """What Discord counts of an embed against the 6,000 of a message."""
    counted = [embed.get("title", ""), embed.get("description", "")]
    counted.append(embed.get("author", {}).get("name", ""))
    counted.append(embed.get("footer", {}).get("text", ""))
    for field in embed.get("fields", ()):
        counted += [field["name"], field["value"]]
    return sum(map(len, counted))
