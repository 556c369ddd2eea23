"""Public archive pages served like the static pages they nearly are: validators from what a
page is made of, 304 before anything is rendered, and a bounded cache of rendered pages.

A digest's page changes rarely after it is built (a code link found, a new version of a paper,
a summary written, a topic renamed, the app upgraded), and a 260 KB page took some 50 ms of
one core to render. Each request now costs one look at what the page is made of
(`store.digest_stamp` and the topic list): its ETag is a hash of that, of this version's
templates and of the settings the page shows; its Last-Modified the latest moment among them.
A request whose `If-None-Match` (or, without one, `If-Modified-Since`) matches is answered 304
there; any other gets the page from the process's cache of rendered pages (bounded in bytes,
least recently used first out), rendered only when the page changed.

Only public pages come here: one person's pages (PRIVATE_BLUEPRINTS, PRIVATE_ENDPOINTS) never
do, and `cached_page` refuses them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from flask import Response, abort, current_app, request

import newsletter
from newsletter.models import Topic
from newsletter.render.environment import template_dir
from newsletter.store import DigestStamp
from newsletter.web.common import PRIVATE_BLUEPRINTS, PRIVATE_ENDPOINTS

MAX_AGE = 300
"""Seconds a browser or shared cache may keep a finished digest's page without asking again;
then it asks with its validators, and mostly gets a 304."""

CACHE_BYTES = 32 * 1024 * 1024
"""Bytes of rendered pages each web process keeps (a digest's page is a few hundred KB)."""

EXTENSION = "newsletter.pages"


class PageCache:
    """Rendered pages by key, the least recently used dropped once they pass `limit` bytes."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._pages: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()  # `newsletter serve` answers in threads

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
            return body

    def put(self, key: tuple, body: bytes) -> None:
        if len(body) > self.limit // 4:
            return  # one huge page must not empty the cache of the others
        with self._lock:
            old = self._pages.pop(key, None)
            self.size += len(body) - (len(old) if old is not None else 0)
            self._pages[key] = body
            while self.size > self.limit:
                _key, dropped = self._pages.popitem(last=False)
                self.size -= len(dropped)


@cache
def template_version() -> tuple[str, datetime]:
    """A hash of this version of the package and of its templates, and the latest time a
    template changed: a deploy that changes how pages look changes every page's validators."""
    digest = hashlib.sha256(newsletter.__version__.encode())
    changed = 0.0
    for path in sorted(template_dir().rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            changed = max(changed, path.stat().st_mtime)
    return digest.hexdigest(), datetime.fromtimestamp(int(changed), UTC)


@dataclass(frozen=True)
class Validators:
    """A page's ETag (a hash of what it is made of), Last-Modified, and whether it is finished."""

    etag: str
    last_modified: datetime
    ready: bool
    digest_id: int
    read_at: float
    """When they were read (`time.monotonic`): they are trusted for STAMP_TTL."""


STAMP_TTL = 2.0
"""Seconds a process trusts a page's validators before it reads them again: under load, one
look at the database per page every 2 s rather than one a request. A page changes that much
later at most; browsers and proxies keep it MAX_AGE anyway."""


class Pages:
    """One app's rendered pages (`PageCache`) and the validators it read lately."""

    def __init__(self) -> None:
        self.rendered = PageCache()
        self.validators: dict[tuple, Validators] = {}

    def validators_of(self, key: tuple, read: Callable[[], Validators | None]) -> Validators:
        known = self.validators.get(key)
        if known is not None and time.monotonic() - known.read_at < STAMP_TTL:
            return known
        fresh = read()
        if fresh is None:
            self.validators.pop(key, None)
            abort(404)
        if len(self.validators) >= VALIDATORS_KEPT:
            self.validators.clear()
        self.validators[key] = fresh
        return fresh


VALIDATORS_KEPT = 4096
"""Pages whose validators a process remembers at most (each a few hundred bytes)."""


def validators(stamp: DigestStamp, topics: Sequence[Topic], shown: object) -> Validators:
    """The validators of a page made of `stamp`'s digest for `topics` as `shown` says (the
    settings it shows, the topic it is of): see the module's docstring."""
    version, templates_changed = template_version()
    made_of = (
        version,
        repr(shown),
        stamp.digest_id,
        stamp.values,
        [(topic.id, topic.name, topic.slug, topic.position, topic.description) for topic in topics],
    )
    return Validators(
        etag=hashlib.sha256(repr(made_of).encode()).hexdigest()[:32],
        last_modified=max(stamp.changed_at, templates_changed).replace(microsecond=0),
        ready=stamp.ready,
        digest_id=stamp.digest_id,
        read_at=time.monotonic(),
    )


def cached_page(read: Callable[[], Validators | None], render: Callable[[int], str]) -> Response:
    """The current request's page: 304 when the client's copy is current, else the page from
    the cache, rendered (`render(digest_id)`) only when it is not there. `read` gives the
    page's validators (None: no such page, 404); they are read again after STAMP_TTL."""
    if request.blueprint in PRIVATE_BLUEPRINTS or request.endpoint in PRIVATE_ENDPOINTS:
        raise RuntimeError(f"{request.endpoint} is one person's page: it is never cached")
    pages: Pages = current_app.extensions.setdefault(EXTENSION, Pages())
    found = pages.validators_of((request.path,), read)
    response = Response(mimetype="text/html")
    response.set_etag(found.etag, weak=True)
    response.last_modified = found.last_modified
    response.cache_control.public = True
    if found.ready:
        response.cache_control.max_age = MAX_AGE
    else:
        response.cache_control.no_cache = True  # still being built: ask every time
    if _unchanged(found.etag, found.last_modified):
        response.status_code = 304
        return response
    key = (request.path, found.etag)
    body = pages.rendered.get(key)
    if body is None:
        body = render(found.digest_id).encode()
        pages.rendered.put(key, body)
    response.set_data(body)
    return response


def _unchanged(etag: str, last_modified: datetime) -> bool:
    """Whether the client's copy is this one (RFC 9110 13.2.2: If-None-Match, when sent,
    decides; If-Modified-Since only without it)."""
    if request.if_none_match:
        return request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    return since is not None and last_modified <= since
