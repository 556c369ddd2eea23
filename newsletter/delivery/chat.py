"""Posting to chat channels: each platform's request and how to read its answer
(`PLATFORMS`), and `ChatSender`, the chat channels' transport, which posts a message's parts in
order and retries each as its platform asks.

A part the platform refused for now (HTTP 429 with its wait; 5xx; no answer in time) is tried
again up to NEWSLETTER_CHANNEL_TRIES times, after the wait the platform named (Slack's and
Discord's `Retry-After`, Discord's `retry_after`, Matrix's `retry_after_ms`, Feishu's rate-limit
codes) or a doubling backoff; a wait over NEWSLETTER_CHANNEL_MAX_WAIT is not waited here, the
row is deferred to then. Each part accepted is noted on the delivery row (`progress`), so a
retry never posts again what a channel has; Matrix's transaction ids, made from the message's
id and the part's number, make even a repeated request one event.

No reason ever holds a channel's URL, token or secret: errors are named by their kind.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from newsletter.config import Settings
from newsletter.delivery.outgoing import SendResult
from newsletter.intake.channels import ChannelSpec as Channel
from newsletter.models import ChatPlatform, Subscriber, utcnow
from newsletter.render.chat import chat_notice
from newsletter.userinput import one_line

log = logging.getLogger(__name__)

Payload = dict[str, Any]
PROGRESS = re.compile(r"posted (\d+) of (\d+)")
"""How a delivery row's detail says which parts a channel has (`posted 2 of 5`)."""
FEISHU_RATE_LIMITED = {11232, 230020}
"""Feishu's answers (HTTP 200) that mean "too many requests, try later"."""


def redacted(channel: Channel, text: str) -> str:
    """`text` (a platform's answer) on one line, short, with no secret of the channel in it."""
    text = one_line(text.replace("\x00", ""), "answer")[:160] if text else ""
    for secret in (channel.url, channel.secret):
        if secret:
            text = text.replace(secret, "…")
    return text


@dataclass(frozen=True)
class ChatMessage:
    """A delivery to a channel: its parts, in order (the analogue of `Outgoing`)."""

    key: int
    channel: Channel
    message_id: str
    posts: tuple[Payload, ...]
    posted: int = 0
    """Parts the channel accepted on an earlier try (never posted again)."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    reason: str = ""
    permanent: bool = False
    retry_after: float | None = None
    """The wait the platform asked for, in seconds (a rate limit)."""


def posted_before(detail: str, total: int) -> int:
    """The parts of a message a delivery row's detail says were accepted (at most `total`)."""
    found = PROGRESS.search(detail or "")
    return min(int(found.group(1)), total) if found else 0


def retry_after_header(response: requests.Response) -> float | None:
    """A `Retry-After` (seconds, or an HTTP date) as seconds from now."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def _json(response: requests.Response) -> dict:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def http_answer(response: requests.Response, channel: Channel, retry_after=None) -> Answer:
    """What an HTTP status says, the same on every platform: 2xx accepted, 429 a rate limit
    (wait `retry_after`, else the `Retry-After` header), 5xx for now, other 4xx for good."""
    status = response.status_code
    if 200 <= status < 300:
        return Answer(True)
    reason = f"HTTP {status} {redacted(channel, response.text)}".strip()
    if status == 429:
        wait = retry_after if retry_after is not None else retry_after_header(response)
        return Answer(False, reason, retry_after=wait)
    return Answer(False, reason, permanent=status < 500 and status != 408)


class Platform:
    """One platform's webhook protocol: the request a part makes, and its answer read."""

    method = "POST"

    def request(self, channel: Channel, payload: Payload, txn: str) -> tuple[str, dict]:
        """The URL and headers for a part (`txn`: the part's own id)."""
        return channel.url, {}

    def body(self, channel: Channel, payload: Payload) -> Payload:
        return payload

    def answer(self, response: requests.Response, channel: Channel) -> Answer:
        return http_answer(response, channel)


class Slack(Platform):
    """An incoming webhook: 200 `ok`; errors are a word (`no_service`, `invalid_blocks`)."""


class Discord(Platform):
    def request(self, channel: Channel, payload: Payload, txn: str) -> tuple[str, dict]:
        # wait=true: Discord answers once the message exists, so an error is this message's.
        joiner = "&" if "?" in channel.url else "?"
        return f"{channel.url}{joiner}wait=true", {}

    def answer(self, response: requests.Response, channel: Channel) -> Answer:
        wait = _json(response).get("retry_after") if response.status_code == 429 else None
        return http_answer(response, channel, float(wait) if wait is not None else None)


class Matrix(Platform):
    """`PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with the bot's token."""

    method = "PUT"

    def request(self, channel: Channel, payload: Payload, txn: str) -> tuple[str, dict]:
        room = quote(channel.room or "", safe="")
        url = f"{channel.url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"
        return url, {"Authorization": f"Bearer {channel.secret}"}

    def answer(self, response: requests.Response, channel: Channel) -> Answer:
        found = _json(response)
        wait = None
        if found.get("errcode") == "M_LIMIT_EXCEEDED" and "retry_after_ms" in found:
            wait = float(found["retry_after_ms"]) / 1000
        if found.get("errcode") == "M_LIMIT_EXCEEDED" and response.status_code != 429:
            return Answer(False, f"M_LIMIT_EXCEEDED (HTTP {response.status_code})", False, wait)
        return http_answer(response, channel, wait)


class Feishu(Platform):
    """A custom bot: HTTP 200 with `{"code": 0}` when accepted; a signed request when the bot
    has a signing secret."""

    def body(self, channel: Channel, payload: Payload) -> Payload:
        if not channel.secret:
            return payload
        timestamp = str(int(time.time()))
        return {**payload, "timestamp": timestamp, "sign": feishu_sign(timestamp, channel.secret)}

    def answer(self, response: requests.Response, channel: Channel) -> Answer:
        if response.status_code != 200:
            wait = retry_after_header(response)
            if wait is None and response.status_code == 429:
                reset = response.headers.get("x-ogw-ratelimit-reset", "")
                wait = float(reset) if reset.isdigit() else None
            return http_answer(response, channel, wait)
        found = _json(response)
        code = found.get("code", found.get("StatusCode", 0))
        if code in (0, None):
            return Answer(True)
        reason = f"code {code} {redacted(channel, str(found.get('msg', '')))}".strip()
        if code in FEISHU_RATE_LIMITED:
            return Answer(False, reason, retry_after=retry_after_header(response))
        return Answer(False, reason, permanent=True)


def feishu_sign(timestamp: str, secret: str) -> str:
    """Feishu's signature: base64 of HMAC-SHA256 keyed with `timestamp\\nsecret`, of nothing."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


PLATFORMS: dict[ChatPlatform, Platform] = {
    ChatPlatform.slack: Slack(),
    ChatPlatform.discord: Discord(),
    ChatPlatform.matrix: Matrix(),
    ChatPlatform.feishu: Feishu(),
}


def transaction_id(message_id: str, part: int) -> str:
    """A part's Matrix transaction id: the same on every try, so a repeated PUT is one event."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    return f"nl{digest}p{part}"


class ChatSender:
    """The chat channels' transport: `send` yields one `SendResult` a message, as it goes."""

    def __init__(
        self,
        settings: Settings,
        *,
        progress: Callable[[int, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = settings.channel_timeout
        self.tries = settings.channel_tries
        self.max_wait = settings.channel_max_wait
        self.backoff = settings.channel_backoff
        self.progress = progress
        """Told (delivery id, detail) each time a part is accepted (the last too: a sender that
        dies before its success is written leaves a row whose parts are all there)."""
        self.sleep = sleep
        self.http = requests.Session()

    def send(self, messages: Iterable[ChatMessage]) -> Iterator[SendResult]:
        for message in messages:
            try:
                yield self.deliver(message)
            except Exception as error:  # one channel's bug, never the batch
                log.exception("posting to %s failed", message.channel.described())
                detail = f"{message.channel.described()}: not posted ({type(error).__name__})"
                yield SendResult(message.key, False, False, detail)

    def close(self) -> None:
        self.http.close()

    def deliver(self, message: ChatMessage) -> SendResult:
        channel, total = message.channel, len(message.posts)
        posted = message.posted
        for part in range(posted, total):
            txn = transaction_id(message.message_id, part)
            answer = self.post(channel, message.posts[part], txn)
            if not answer.ok:
                detail = f"{channel.described()}: {answer.reason}"
                if posted:
                    detail += f" (posted {posted} of {total})"
                return SendResult(
                    message.key, False, answer.permanent, detail, retry_after=answer.retry_after
                )
            posted += 1
            if self.progress is not None:
                self.progress(message.key, f"{channel.described()}: posted {posted} of {total}")
        return SendResult(
            message.key, True, False, f"{channel.described()}: posted {total} of {total}"
        )

    def post(self, channel: Channel, payload: Payload, txn: str = "test") -> Answer:
        """One part, tried as the platform allows; the last answer."""
        answer = Answer(False, "not tried")
        for attempt in range(self.tries):
            answer = self._once(channel, payload, txn)
            if answer.ok or answer.permanent:
                return answer
            wait = answer.retry_after
            if wait is None:
                wait = self.backoff * 2**attempt
            if wait > self.max_wait:
                return Answer(False, answer.reason, retry_after=wait)
            if attempt + 1 < self.tries:
                self.sleep(wait)
        return answer

    def _once(self, channel: Channel, payload: Payload, txn: str) -> Answer:
        platform = PLATFORMS[channel.platform]
        url, headers = platform.request(channel, payload, txn)
        body = json.dumps(platform.body(channel, payload), ensure_ascii=False).encode()
        headers = {**headers, "Content-Type": "application/json; charset=utf-8"}
        try:
            response = self.http.request(
                platform.method, url, data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as error:  # its text holds the URL: named by kind
            return Answer(False, f"no answer ({type(error).__name__})")
        return platform.answer(response, channel)


def post_test_notice(settings: Settings, subscriber: Subscriber) -> tuple[Channel, Answer]:
    """Post a one-line test message to a stored channel now (`channels test`, the API's
    `POST /channels/<id>/test`): the channel and what its platform answered."""
    channel = Channel.of(subscriber)
    topics = ", ".join(topic.name for topic in subscriber.topics)
    text = f"Test from the arXiv digest: this channel gets the papers of {topics}."
    return channel, ChatSender(settings).post(channel, chat_notice(channel.platform, text))
