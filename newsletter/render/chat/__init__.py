"""A digest rendered for team chat: the segment's content (`common.chat_digest`), as Slack Block
Kit (`slack`), Discord embeds (`discord`), Matrix HTML (`matrix`) or Feishu cards (`feishu`),
split into posts under each platform's limits."""

from __future__ import annotations

from newsletter.digest.content import DigestContent
from newsletter.models import ChatPlatform
from newsletter.render.chat.common import ChatRenderer, Payload, chat_digest
from newsletter.render.chat.discord import DiscordRenderer
from newsletter.render.chat.feishu import FeishuRenderer
from newsletter.render.chat.matrix import MatrixRenderer
from newsletter.render.chat.slack import SlackRenderer

RENDERERS: dict[ChatPlatform, ChatRenderer] = {
    ChatPlatform.slack: SlackRenderer(),
    ChatPlatform.discord: DiscordRenderer(),
    ChatPlatform.matrix: MatrixRenderer(),
    ChatPlatform.feishu: FeishuRenderer(),
}


def chat_posts(platform: ChatPlatform, content: DigestContent) -> list[Payload]:
    """A segment's digest as the posts of one platform, in order."""
    return RENDERERS[platform].posts(chat_digest(content))


def chat_notice(platform: ChatPlatform, text: str) -> Payload:
    """One post of one line (`newsletter channels test`)."""
    return RENDERERS[platform].notice(text)


__all__ = ["RENDERERS", "Payload", "chat_notice", "chat_posts"]
