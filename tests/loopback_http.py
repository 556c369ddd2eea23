"""What the tests' fake HTTP services share: a threaded server on 127.0.0.1 at a free port,
and a request handler that sends a scripted answer.

    class _EchoHandler(LoopbackHandler):
        owner: EchoServer                     # the server this request came to

        def do_GET(self) -> None:  # noqa: N802
            self.send_reply(200, "text/plain", self.path.encode())

    class EchoServer(LoopbackHTTPServer):
        def __init__(self) -> None:
            super().__init__(_EchoHandler)

        def url_for(self, port: int) -> str:
            return f"http://{HOST}:{port}/echo"

    with EchoServer() as server:              # or server.start() ... server.stop()
        requests.get(server.url)

A subclass records requests and scripts the answers; these classes only start and stop the
server and write an answer. `stop()` also ends every answer still held back by a `delay`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"


class LoopbackHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests for `owner`, the `LoopbackHTTPServer` it came to."""

    owner: LoopbackHTTPServer
    protocol_version = "HTTP/1.1"

    def send_reply(
        self,
        status: int,
        content_type: str,
        body: bytes,
        *,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer after `delay` seconds, or not at all when the server stops in the meantime."""
        if delay and self.owner._stopping.wait(delay):
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting (a timeout test): nothing to tell it

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: tests assert on the requests the server recorded, not on a log


class LoopbackHTTPServer:
    """Serves with `handler_class` on 127.0.0.1 at a free port; `.url` is `url_for(port)` once
    started. Each handler finds this server as its `owner`."""

    def __init__(self, handler_class: type[LoopbackHandler]) -> None:
        self.handler_class = handler_class
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def url_for(self, port: int) -> str:
        """The address `.url` holds when the server listens on `port`."""
        return f"http://{HOST}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self.handler_class,), {"owner": self})
        self._httpd = ThreadingHTTPServer((HOST, 0), handler)
        self._httpd.block_on_close = False  # a held-back reply must not block stop()
        self.url = self.url_for(self._httpd.server_address[1])
        # A short poll interval keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
