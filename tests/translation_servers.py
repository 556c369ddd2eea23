"""Local HTTP servers that speak each translator's protocol, for tests (loopback only).

    with TranslatorServer("deepl") as server:
        server.queue(Reply.status(429), Reply.status(500))   # the next two requests fail
        ...settings with NEWSLETTER_TRANSLATOR_URL=server.url...
        assert server.requests[-1].headers["Authorization"] == "DeepL-Auth-Key k:fx"
        assert server.texts_translated == 3

Each server translates with `translate(text, code)` (default: `fake_translation`, which marks
the text with the provider's language code and keeps everything else, placeholders included),
so a test sees which language each text was sent in. The `openai` server also answers the
summarizer (a chat request whose user message is an abstract, not the translator's JSON) with
`summarize(text, code)` (default: `fake_summary`, the abstract's first sentence, marked alike).
Queued replies answer first, each once; `fail_always` answers every request with one reply (a
provider that stays down). Every request is recorded with its method, path, query, headers and
JSON body.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.loopback_http import HOST, LoopbackHandler, LoopbackHTTPServer

PROTOCOLS = ("google", "openai", "deepl", "libretranslate")
LIBRETRANSLATE_LANGUAGES = ["en", "de", "fr", "ja", "zh-Hans", "zh-Hant", "pt-BR", "pt-PT"]


def fake_translation(text: str, code: str) -> str:
    """`[zh-CN] We study …`: the text, marked with the language it was sent in."""
    return f"[{code}] {text}"


def fake_summary(text: str, code: str) -> str:
    """`[de] We propose [[0]], which …`: the abstract's first sentence, placeholders kept,
    marked with the language it was asked in."""
    return f"[{code}] " + re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


@dataclass(frozen=True)
class Reply:
    """A scripted answer that replaces the protocol's own (a failure, a malformed body)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def status_only(cls, status: int, **headers: str) -> Reply:
        return cls(status, f"error {status}".encode(), "text/plain", headers=headers)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode())

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        """Holds the answer back (the client times out first); answers 200 with nothing usable."""
        return cls(200, b"{}", delay=seconds)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: object
    time: float

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


class TranslatorServer(LoopbackHTTPServer):
    """One provider's API on 127.0.0.1 at a free port; `.url` is what NEWSLETTER_TRANSLATOR_URL
    takes for that provider."""

    def __init__(
        self,
        protocol: str,
        translate: Callable[[str, str], str] = fake_translation,
        summarize: Callable[[str, str], str] = fake_summary,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(protocol)
        super().__init__(_Handler)
        self.protocol = protocol
        self.translate = translate
        self.summarize = summarize
        self.requests: list[Recorded] = []
        self.texts_translated = 0
        self.texts_summarized = 0
        self._queue: list[Reply] = []
        self._always: Reply | None = None
        self._lock = threading.Lock()

    def url_for(self, port: int) -> str:
        base = f"http://{HOST}:{port}"
        return base + "/v1" if self.protocol == "openai" else base

    # -- scripting

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def fail_always(self, reply: Reply | None) -> None:
        """Answer every request with `reply` from now on (None: speak the protocol again)."""
        with self._lock:
            self._always = reply

    def translation_requests(self) -> list[Recorded]:
        """Requests that asked for translations (LibreTranslate's /languages left out)."""
        return [r for r in self.requests if r.path != "/languages" and not _summary_asked(r)]

    def summary_requests(self) -> list[Recorded]:
        """Requests that asked the `openai` server for a summary."""
        return [r for r in self.requests if _summary_asked(r)]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.texts_translated = 0
            self.texts_summarized = 0

    # -- answering

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.pop(0)
            if self._always is not None:
                return self._always
        try:
            return getattr(self, f"_{self.protocol}")(request)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            return Reply.json({"error": f"bad request: {error!r}"}, status=400)

    def _count(self, texts: list[str]) -> None:
        with self._lock:
            self.texts_translated += len(texts)

    def _google(self, request: Recorded) -> Reply:
        if request.path != "/translate_a/single":
            return Reply.status_only(404)
        code, text = request.param("tl"), request.param("q")
        self._count([text])
        # Like Google: one row per sentence, [translation, source, …], to be joined.
        sentences = re.split(r"(?<=[.!?])(\s+)", self.translate(text, code))
        rows, pieces = [], [s for s in sentences if s]
        for piece in pieces:
            if piece.isspace() and rows:
                rows[-1][0] += piece
            else:
                rows.append([piece, piece, None, None, 10])
        return Reply.json([rows, None, "en", None, None, None, 1.0, [], [["en"], None, [1.0]]])

    def _openai(self, request: Recorded) -> Reply:
        if request.path != "/v1/chat/completions":
            return Reply.status_only(404)
        system, user = request.body["messages"]
        code = re.search(r"BCP-47: ([A-Za-z-]+)", system["content"]).group(1)
        if _summary_asked(request):
            with self._lock:
                self.texts_summarized += 1
            return _chat_reply(request, self.summarize(user["content"], code))
        texts = json.loads(user["content"])["texts"]
        self._count([entry["text"] for entry in texts])
        answer = {
            "translations": [
                {"id": entry["id"], "text": self.translate(entry["text"], code)} for entry in texts
            ]
        }
        return _chat_reply(request, json.dumps(answer))

    def _deepl(self, request: Recorded) -> Reply:
        if request.path != "/v2/translate":
            return Reply.status_only(404)
        if not request.headers.get("Authorization", "").startswith("DeepL-Auth-Key "):
            return Reply.json({"message": "Authorization failure"}, status=403)
        texts, code = request.body["text"], request.body["target_lang"]
        self._count(texts)
        return Reply.json(
            {
                "translations": [
                    {"detected_source_language": "EN", "text": self.translate(text, code)}
                    for text in texts
                ]
            }
        )

    def _libretranslate(self, request: Recorded) -> Reply:
        if request.path == "/languages" and request.method == "GET":
            return Reply.json(
                [{"code": code, "name": code, "targets": []} for code in LIBRETRANSLATE_LANGUAGES]
            )
        if request.path != "/translate":
            return Reply.status_only(404)
        texts, code = request.body["q"], request.body["target"]
        if code not in LIBRETRANSLATE_LANGUAGES:
            return Reply.json({"error": f"{code} is not supported"}, status=400)
        self._count(texts)
        return Reply.json({"translatedText": [self.translate(text, code) for text in texts]})


def _summary_asked(request: Recorded) -> bool:
    """A chat request from the summarizer: its user message is an abstract, not JSON texts."""
    if request.path != "/v1/chat/completions" or not isinstance(request.body, dict):
        return False
    try:
        return "texts" not in json.loads(request.body["messages"][-1]["content"])
    except (ValueError, TypeError, KeyError, IndexError):
        return True


def _chat_reply(request: Recorded, content: str) -> Reply:
    """A chat completion whose one choice says `content`."""
    return Reply.json(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": request.body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    )


class _Handler(LoopbackHandler):
    owner: TranslatorServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        recorded = Recorded(
            self.command,
            parts.path,
            parse_qs(parts.query),
            dict(self.headers.items()),
            body,
            arrived,
        )
        reply = self.owner._answer(recorded)
        self.send_reply(
            reply.status,
            reply.content_type,
            reply.body,
            delay=reply.delay,
            headers=reply.headers,
        )
