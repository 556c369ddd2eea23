"""What the web app refuses before any view runs, and what it answers when the database is busy.

One bad request must cost a worker nothing and never reach the layers below as a 500: a body
too large is refused before it is read; a NUL character (which PostgreSQL refuses in any
string) is refused before any view passes it to a query; a database locked by another
process answers 503 with Retry-After well before gunicorn's timeout would kill the worker.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Response, abort, request
from sqlalchemy.exc import OperationalError

from newsletter.db import is_busy
from newsletter.web.common import is_api_request, message

MAX_BODY = 64 * 1024
"""Bytes a request body may hold. The largest form (preferences with every topic ticked, and a
CSRF token) is a few KB; a body of more is not from our pages, and is refused with 413 unread
(by its Content-Length), or as soon as a chunked one passes the limit."""

SEED_UPLOAD = 1024 * 1024
"""Bytes of the library's "Start from papers you know" form: a BibTeX export of a few thousand
entries, with the ids typed beside it. The form is the only one that takes a file."""

API_IMPORT = 1024 * 1024
"""Bytes of a CSV the API's import takes: some 10,000 subscribers' rows; more, in parts."""

LARGER_BODIES = {"library.seed": SEED_UPLOAD, "api_subscribers.import_subscribers": API_IMPORT}
"""Endpoints that may receive more than MAX_BODY, and how much."""

LOCK_WAIT = 5.0
"""Seconds a web request waits for a database lock held by another process (the worker and the
CLI wait `db.LOCK_TIMEOUT`, 30 s): well inside gunicorn's `--timeout 30` (Procfile), so the
page says "busy, try again" instead of the worker being killed mid-request."""

RETRY_AFTER = 10
"""Seconds a client is asked to wait after a 503: a lock held by the daily job's writes is
usually gone by then."""

NUL = "\x00"


def body_limit(endpoint: str | None) -> int:
    """Bytes a request to `endpoint` may send."""
    return LARGER_BODIES.get(endpoint or "", MAX_BODY)


def is_chunked(environ: dict) -> bool:
    """Whether a request's body comes in chunks, without a length."""
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def bound_chunked_body(environ: dict, limit: int = MAX_BODY) -> None:
    """Read a chunked body (it says no length) up to one byte past `limit` (the endpoint's
    `body_limit`), and hand it on as a body of that length, which `refuse_oversized_body` then
    judges like any other.

    Flask's MAX_CONTENT_LENGTH alone would not do: on a stream without a length, Werkzeug stops
    reading at the limit without an error, and a form cut short there could pass for whole.
    """
    if not is_chunked(environ):
        return
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = stream.read(size - len(data))  # Werkzeug's dechunker returns a chunk at a time
        if not piece:
            break
        data += piece
    return bytes(data)


def refuse_oversized_body() -> None:
    """413 for a body larger than its endpoint's `body_limit`, by its Content-Length: not a
    byte of it is read."""
    limit = body_limit(request.endpoint)
    request.max_content_length = limit  # what Werkzeug then reads at most, for this request
    if request.content_length is not None and request.content_length > limit:
        abort(413)


def refuse_nul() -> tuple[str, int] | None:
    """404 for a NUL in the path, 400 for one in the query or a form: no address of ours has
    one, no field may hold one, and PostgreSQL would fail on it deep inside a view."""
    if NUL in request.path:
        abort(404)
    fields = [*request.args.items(multi=True)]
    if request.method == "POST":
        fields += request.form.items(multi=True)  # bounded: MAX_CONTENT_LENGTH
    if any(NUL in name or NUL in value for name, value in fields):
        if is_api_request():
            abort(400, "The address holds a NUL character, which no value may hold.")
        return message(
            "This request is not valid",
            "The address or the form holds a character no page of this site sends. Go back to"
            " the page and try again.",
            400,
        )
    return None


def too_large(_error: Exception) -> tuple[str, int]:
    if request.endpoint in LARGER_BODIES:
        size = f"{LARGER_BODIES[request.endpoint] // 1024 // 1024} MB"
        return message(
            "This file is too large",
            f"The papers you send at once (the file and the ids together) may take up to {size}."
            " Split the BibTeX file, or export fewer entries, and send each part.",
            413,
        )
    return message(
        "This request is too large",
        "It is larger than any form of this site sends. Go back to the page and try again.",
        413,
    )


def database_busy(error: OperationalError) -> Response:
    """503 with Retry-After for a lock that did not come free in time; any other database
    fault stays a 500."""
    if not is_busy(error):
        raise error
    body, status = message(
        "Busy for a moment",
        "The site is busy for a moment. Please try again in a few seconds.",
        503,
    )
    return Response(body, status, headers={"Retry-After": str(RETRY_AFTER)})
