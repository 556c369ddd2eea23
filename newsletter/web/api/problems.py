"""Every API error as an RFC 9457 problem details document (`application/problem+json`):
`type`, `title`, `status`, `detail`, `instance`, and `errors` naming the fields at fault.

The project's errors are mapped here once: what a user typed wrong (InvalidInput) is 422 with
the command line's own words, a name that is not there 404, one that is there already 409, a
part that is down (the database busy, the queue, arXiv) 503 with Retry-After."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import wraps

from flask import Response, current_app, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from newsletter.db import is_busy
from newsletter.errors import (
    AlreadyExists,
    DatabaseError,
    FetchError,
    InUse,
    InvalidInput,
    NewsletterError,
    NothingToDo,
    QueueError,
    UnknownRecord,
    UnknownSubscriber,
    UnknownTopic,
)
from newsletter.web.common import API_PREFIX, is_api_request
from newsletter.web.limits import body_limit

PROBLEM = "application/problem+json"
RETRY_AFTER = 10
"""Seconds a client is asked to wait when a part is down or busy."""

STATUS_OF: tuple[tuple[type[NewsletterError] | tuple, int, str], ...] = (
    ((UnknownTopic, UnknownSubscriber, UnknownRecord), 404, "not-found"),
    ((AlreadyExists, InUse, NothingToDo), 409, "conflict"),
    (InvalidInput, 422, "invalid-input"),
    ((DatabaseError, QueueError), 503, "unavailable"),
    (FetchError, 503, "arxiv-unavailable"),
)
"""Which of our errors answers with which status, and the `type` it is (under TYPE_BASE)."""
TYPE_BASE = f"{API_PREFIX}/problems/"
TYPES = {kind for _, _, kind in STATUS_OF} | {
    "validation",
    "rate-limited",
    "unauthorized",
    "forbidden",
}


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    errors: dict | None = None,
    headers: dict | None = None,
) -> Response:
    """A problem details answer. `kind` names a problem of ours (its `type`); without it the
    type is `about:blank`, and the title the status's phrase, as RFC 9457 says."""
    body = {
        "type": f"{TYPE_BASE}{kind}" if kind else "about:blank",
        "title": title or HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status, mimetype=PROBLEM)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 503:
        response.headers.setdefault("Retry-After", str(RETRY_AFTER))
    return response


def from_error(error: NewsletterError) -> Response:
    """One of our errors as a problem; its message is the detail, as the command line says it."""
    if (
        isinstance(error, UnknownTopic | UnknownSubscriber | UnknownRecord)
        and not request.view_args
    ):
        # A name in the body or the query that is not there is a bad value (422); only one in
        # the path is a resource that is not there (404).
        return problem(422, str(error), kind="invalid-input")
    for kinds, status, kind in STATUS_OF:
        if isinstance(error, kinds):
            field = getattr(error, "field", None)
            errors = {field: [str(error)]} if field else None
            return problem(status, str(error), kind=kind, errors=errors)
    raise error  # any other is a bug of ours: a 500, with its traceback in the log


def from_http(error: HTTPException) -> Response:
    """An HTTP error (Flask's, Werkzeug's, webargs' validation, the rate limit) as a problem."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:  # webargs: {"json": {"field": ["message"]}} per location
        errors = {}
        for location, by_field in messages.items():
            errors.update(by_field if isinstance(by_field, dict) else {location: by_field})
        return problem(
            status,
            "The request's fields are not valid: see `errors`.",
            kind="validation",
            errors=errors,
        )
    headers = dict(error.get_headers()) if status == 405 else {}  # its Allow
    headers.pop("Content-Type", None)
    if status == 429:
        wait = seconds_to_reset()
        headers["Retry-After"] = str(wait)
        detail = f"This token may make {error.description} requests; try again in {wait} s."
        return problem(429, detail, kind="rate-limited", headers=headers)
    detail = error.description or ""
    if status == 413:
        detail = (
            f"The body is larger than this operation takes ({body_limit(request.endpoint)} bytes)."
        )
    return problem(status, detail, headers=headers)


LIMITER = "newsletter-api-limiter"
"""Where the app keeps its rate limiter (`app.extensions`)."""


def seconds_to_reset() -> int:
    """Seconds until the token's window of the rate limit starts again."""
    limit = current_app.extensions[LIMITER].current_limit
    if limit is None:
        return 60
    return max(1, math.ceil(limit.reset_at - time.time()))


def pages_or_problems(page_handler: Callable) -> Callable:
    """An app-wide error handler of the site's pages, that answers API requests with a
    problem instead (a 404 for an address no route has is the app's, not a blueprint's)."""

    @wraps(page_handler)
    def handler(error: Exception):
        if not is_api_request():
            return page_handler(error)
        if isinstance(error, HTTPException):
            return from_http(error)
        if isinstance(error, OperationalError) and is_busy(error):
            return problem(503, "The database is busy for a moment; try again in a few seconds.")
        raise error

    return handler
