"""Each claimed channel row's message: its segment's content (the body a person with the same
topics and language gets) rendered for its platform once per process, with the channel it
goes to and the parts it has already (`ChatMessages`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.delivery.chat import Channel, ChatMessage, Payload, posted_before
from newsletter.delivery.messages import MessageBuilder
from newsletter.digest.segments import SegmentKey
from newsletter.models import ChatPlatform
from newsletter.render.chat import chat_posts
from newsletter.store import ChannelTarget, ClaimedDelivery


class ChatMessages:
    """One digest's channel messages, for one sending process (beside its `MessageBuilder`,
    whose edition and segment keys it shares)."""

    def __init__(self, messages: MessageBuilder) -> None:
        self.messages = messages
        self._targets: dict[int, ChannelTarget] = {}
        self._posts: dict[tuple[ChatPlatform, SegmentKey], tuple[Payload, ...]] = {}

    def prepare(self, session: Session, rows: list[ClaimedDelivery]) -> None:
        """Read where the channel rows among these go, and what each was posted already."""
        wanted = [row.delivery_id for row in rows if row.channel is not None]
        self._targets = store.channel_targets(session, wanted)

    def message(self, row: ClaimedDelivery) -> ChatMessage:
        target = self._targets[row.delivery_id]
        key = (target.platform, self.messages.segment_key(row))
        posts = self._posts.get(key)
        if posts is None:
            content = self.messages.edition.content(*key[1])
            posts = self._posts[key] = tuple(chat_posts(target.platform, content))
        channel = Channel(target.platform, target.url, target.label, target.room, target.secret)
        posted = posted_before(target.detail, len(posts))
        return ChatMessage(row.delivery_id, channel, row.message_id, posts, posted)
