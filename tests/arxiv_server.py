"""A local HTTP server that answers like arXiv's API, for tests (loopback only).

    with ArxivServer() as server:
        server.route(Reply.file(shared_fixture("current/all-testing_start0_10.xml")), start=0)
        server.route(Reply.file(local_fixture("page2.xml")), start=10)
        server.queue(Reply.text("Rate exceeded.", status=503))   # answers the next request first
        source = ArxivSource(server.url, delay=0, backoff=0.01)
        ...
        assert server.requests[0].start == 0
        assert server.requests[1].time - server.requests[0].time >= 0.3

How a request is answered: the oldest queued reply if any (each is used once), else the first
route whose parameters all match the request's, else the default reply, else a 404 that says
nothing was scripted. Every request is recorded, with its parsed parameters and the
`time.monotonic()` at which it arrived. Replies are bytes served exactly as given (the real
arXiv bodies under `../shared/fixtures/arxiv/` or this project's own `tests/fixtures/arxiv/`).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.loopback_http import HOST, LoopbackHandler, LoopbackHTTPServer

API_PATH = "/api/query"
ATOM_TYPE = "application/atom+xml; charset=utf-8"

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "arxiv"
"""Real arXiv responses, kept outside the project (read from there, never copied)."""
LOCAL_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "arxiv"
"""Small hand-written feeds of this project: always present."""


def shared_fixture(relpath: str) -> Path:
    """A real arXiv response from ../shared/fixtures/arxiv; skips the test where it is absent."""
    path = SHARED_FIXTURES / relpath
    if not path.is_file():
        pytest.skip(f"../shared/fixtures/arxiv not found: {path} is missing")
    return path


def local_fixture(name: str) -> Path:
    """One of this project's own feeds under tests/fixtures/arxiv."""
    path = LOCAL_FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


_CONTENT_TYPES = {
    ".xml": ATOM_TYPE,
    ".atom": ATOM_TYPE,
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer. `delay` holds the answer back (to make a client time out)."""

    status: int = 200
    content_type: str = ATOM_TYPE
    body: bytes = b""
    delay: float = 0.0

    @classmethod
    def file(cls, path: Path, status: int = 200, content_type: str | None = None) -> Reply:
        """A file's bytes, with a content type guessed from its suffix unless given."""
        guessed = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return cls(status, content_type or guessed, path.read_bytes())

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Reply:
        return cls(status, content_type, text.encode())


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it."""

    path: str
    params: dict[str, str]
    """Query parameters, decoded, first value of each."""
    time: float
    """`time.monotonic()` when the request arrived."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def start(self) -> int | None:
        return int(self.params["start"]) if "start" in self.params else None

    @property
    def max_results(self) -> int | None:
        return int(self.params["max_results"]) if "max_results" in self.params else None

    @property
    def search_query(self) -> str | None:
        return self.params.get("search_query")


class ArxivServer(LoopbackHTTPServer):
    """arXiv's API on 127.0.0.1 at a free port; `.url` is its `/api/query` address."""

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__(_Handler)
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._queue: list[Reply] = []
        self._routes: list[tuple[dict[str, str], Reply]] = []
        self._lock = threading.Lock()

    def url_for(self, port: int) -> str:
        return f"http://{HOST}:{port}{API_PATH}"

    # -- scripting

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, each once."""
        with self._lock:
            self._queue.extend(replies)

    def route(self, reply: Reply, **params: object) -> None:
        """Answer every request whose parameters include `params` (e.g. start=10) with `reply`."""
        with self._lock:
            self._routes.append(({key: str(value) for key, value in params.items()}, reply))

    def route_first(self, reply: Reply, **params: object) -> None:
        """Like `route`, but ahead of the routes set so far (to break one of them)."""
        with self._lock:
            self._routes.insert(0, ({key: str(value) for key, value in params.items()}, reply))

    def serve(self, path: Path, **params: object) -> None:
        """Shorthand for `route(Reply.file(path), **params)`."""
        self.route(Reply.file(path), **params)

    def starts(self) -> list[int | None]:
        """The `start` parameter of every request so far."""
        return [request.start for request in self.requests]

    # -- answering

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.pop(0)
            for wanted, reply in self._routes:
                if all(request.params.get(key) == value for key, value in wanted.items()):
                    return reply
            if self.default is not None:
                return self.default
        return Reply.text(f"nothing scripted for {request.path} {request.params}", status=404)


class _Handler(LoopbackHandler):
    owner: ArxivServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        recorded = RecordedRequest(parts.path, params, arrived, dict(self.headers.items()))
        reply = self.owner._answer(recorded)
        self.send_reply(reply.status, reply.content_type, reply.body, delay=reply.delay)


def refused_url() -> str:
    """An /api/query address on a loopback port where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return f"http://{HOST}:{port}{API_PATH}"
