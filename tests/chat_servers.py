"""Local servers speaking each chat platform's webhook protocol, as strict as the real ones
about what matters here: the path (the secret part of a webhook URL), the payload's shape and
size limits (refused as the platform refuses them), Matrix's token and idempotent transaction
ids, Feishu's signature. Answers can be scripted (a 429 with its wait, a 500) before the
normal one.

    with ChatServer("slack") as server:
        ... post to server.url ...
        server.accepted      # the payloads the channel shows, in order
        server.refused       # why each refused request was refused
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field

from tests.loopback_http import HOST, LoopbackHandler, LoopbackHTTPServer

SLACK_PATH = "/services/T0000/B0000/SLACKSECRETPATH"
DISCORD_PATH = "/api/webhooks/1234/DISCORDSECRETTOKEN"
FEISHU_PATH = "/open-apis/bot/v2/hook/FEISHUSECRETHOOK"
MATRIX_TOKEN = "syt_MATRIXSECRETTOKEN"
MATRIX_ROOM = "!labroom:127.0.0.1"
FEISHU_SECRET = "FEISHUSIGNINGSECRET"

# The limits each platform enforces (see newsletter/render/chat/*.py for the sources).
SLACK_BLOCKS, SLACK_SECTION, SLACK_HEADER, SLACK_TOTAL = 50, 3000, 150, 13_000
DISCORD_EMBEDS, DISCORD_TOTAL, DISCORD_TITLE, DISCORD_DESCRIPTION = 10, 6000, 256, 4096
MATRIX_EVENT = 65_536
FEISHU_BODY = 20 * 1024


@dataclass
class Reply:
    status: int = 200
    body: object = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds before answering (a platform that hangs)."""

    def bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:
        return json.loads(self.body)


class _Handler(LoopbackHandler):
    owner: ChatServer

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def do_PUT(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = Request(
            self.command, self.path, dict(self.headers), self.rfile.read(length), time.monotonic()
        )
        reply = self.owner.handle(request)
        self.send_reply(
            reply.status,
            "application/json",
            reply.bytes(),
            headers=reply.headers,
            delay=reply.delay,
        )


class ChatServer(LoopbackHTTPServer):
    def __init__(self, platform: str, *, secret: str | None = None) -> None:
        super().__init__(_Handler)
        self.platform = platform
        self.secret = secret
        """Feishu: the signing secret requests must be signed with (None: unsigned)."""
        self.requests: list[Request] = []
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        self.script: list[Reply] = []
        self.slow: list[float] = []
        """Delays of the next normal answers: the post is made, its answer comes late."""
        self._events: dict[str, str] = {}  # Matrix: txnId → event id
        self._lock = threading.Lock()

    def url_for(self, port: int) -> str:
        base = f"http://{HOST}:{port}"
        paths = {"slack": SLACK_PATH, "discord": DISCORD_PATH, "feishu": FEISHU_PATH}
        return base + paths.get(self.platform, "")

    def then(self, *replies: Reply) -> ChatServer:
        """Answer the next requests with these, in order, before answering normally."""
        self.script.extend(replies)
        return self

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
            reason, reply = getattr(self, f"_{self.platform}")(request)
            if reason:
                self.refused.append(reason)
            if self.slow:
                reply.delay = self.slow.pop(0)
            return reply

    # -------------------------------------------------------------- each platform's rules

    def _slack(self, request: Request) -> tuple[str, Reply]:
        if request.path != SLACK_PATH:
            return "unknown hook", Reply(404, b"no_service")
        payload = request.json()
        blocks = payload.get("blocks", [])
        texts = [text for block in blocks for text in _slack_texts(block)]
        headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
        if (
            len(blocks) > SLACK_BLOCKS
            or any(len(text) > SLACK_SECTION for text in texts)
            or any(len(text) > SLACK_HEADER for text in headers)
        ):
            return "invalid_blocks", Reply(400, b"invalid_blocks")
        if sum(map(len, texts)) > SLACK_TOTAL:
            return "msg_blocks_too_long", Reply(400, b"msg_blocks_too_long")
        self.accepted.append(payload)
        return "", Reply(200, b"ok")

    def _discord(self, request: Request) -> tuple[str, Reply]:
        if request.path != DISCORD_PATH + "?wait=true":
            return "unknown webhook", Reply(404, {"message": "Unknown Webhook", "code": 10015})
        payload = request.json()
        embeds = payload.get("embeds", [])
        total = sum(_embed_chars(embed) for embed in embeds)
        if (
            len(embeds) > DISCORD_EMBEDS
            or total > DISCORD_TOTAL
            or any(len(e.get("title", "")) > DISCORD_TITLE for e in embeds)
            or any(len(e.get("description", "")) > DISCORD_DESCRIPTION for e in embeds)
        ):
            return "invalid form body", Reply(400, {"message": "Invalid Form Body", "code": 50035})
        self.accepted.append(payload)
        return "", Reply(200, {"id": str(len(self.accepted)), "type": 0})

    def _matrix(self, request: Request) -> tuple[str, Reply]:
        prefix = "/_matrix/client/v3/rooms/%21labroom%3A127.0.0.1/send/m.room.message/"
        if request.method != "PUT" or not request.path.startswith(prefix):
            return "unrecognised", Reply(404, {"errcode": "M_UNRECOGNIZED"})
        if request.headers.get("Authorization") != f"Bearer {MATRIX_TOKEN}":
            return "bad token", Reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid token"})
        if len(request.body) + 1024 > MATRIX_EVENT:  # the envelope a homeserver adds
            return "too large", Reply(413, {"errcode": "M_TOO_LARGE"})
        txn = request.path[len(prefix) :]
        if txn not in self._events:  # a repeated transaction is the same event
            self._events[txn] = f"$event{len(self._events)}"
            self.accepted.append(request.json())
        return "", Reply(200, {"event_id": self._events[txn]})

    def _feishu(self, request: Request) -> tuple[str, Reply]:
        if request.path != FEISHU_PATH:
            return "no hook", Reply(404, b"")
        if len(request.body) > FEISHU_BODY:
            return "too large", Reply(200, {"code": 9499, "msg": "request body too large"})
        payload = request.json()
        if self.secret is not None:
            timestamp = payload.get("timestamp", "")
            key = f"{timestamp}\n{self.secret}".encode()
            wanted = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if payload.get("sign") != wanted or abs(time.time() - int(timestamp or 0)) > 3600:
                return "bad signature", Reply(200, {"code": 19021, "msg": "sign match fail"})
        if payload.get("msg_type") != "interactive" or "elements" not in payload.get("card", {}):
            return "not a card", Reply(200, {"code": 9499, "msg": "Bad Request"})
        self.accepted.append(payload)
        return "", Reply(200, {"code": 0, "msg": "success", "data": {}})


def _slack_texts(block: dict) -> list[str]:
    texts = [block["text"]["text"]] if "text" in block else []
    return texts + [element["text"] for element in block.get("elements", ())]


def _embed_chars(embed: dict) -> int:
    counted = [embed.get("title", ""), embed.get("description", "")]
    counted += [embed.get("author", {}).get("name", ""), embed.get("footer", {}).get("text", "")]
    for item in embed.get("fields", ()):
        counted += [item["name"], item["value"]]
    return sum(map(len, counted))
