"""Talking to arXiv's API: fetch a query's newest papers, return plain data (`papers`).

The `arxiv` package pages through results and parses the Atom feed. Everything it does not do
is here: a timeout on every request, one request at a time at least `delay` seconds apart
(arXiv's rule, retries included), retries with exponential backoff, and a look at every
answer *before* the parser sees it. That look matters because the parser turns an HTML error
page, `Rate exceeded.` or a garbage body into an empty feed, and skips arXiv's error entries
silently, so a broken fetch would otherwise read as "no new papers today".

Nothing of `arxiv`'s or `requests`' exception types leaves this module: every failure is a
`FetchError` (or one of the subclasses below) that says what arXiv answered, to which URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import arxiv
import requests
from lxml import etree
from tenacity import retry_if_exception, wait_exponential, wait_fixed

from newsletter import metrics
from newsletter.errors import FetchError
from newsletter.retrying import AttemptFailed, call_with_retries
from newsletter.sources.papers import FetchedPaper, paper_from_result

__all__ = [
    "ArxivBadResponse",
    "ArxivQueryError",
    "ArxivRateLimited",
    "ArxivSource",
    "ArxivUnavailable",
    "STOP_AFTER_KNOWN",
]

logger = logging.getLogger(__name__)


class ArxivUnavailable(FetchError):
    """arXiv is down, overloaded or unreachable: worth trying again later."""


class ArxivRateLimited(ArxivUnavailable):
    """arXiv answered `Rate exceeded.`: we asked too often."""


class ArxivBadResponse(FetchError):
    """arXiv answered, but not with a usable Atom feed (HTML, garbage, an empty page)."""


class ArxivQueryError(FetchError):
    """arXiv refused the request itself (a bad query or URL): trying again will not help."""


ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
USER_AGENT = f"arxiv-newsletter (arxiv.py {arxiv.__version__})"


# ---------------------------------------------------------------------------------------------
# Queries


# ---------------------------------------------------------------------------------------------
# Papers


# ---------------------------------------------------------------------------------------------
# Fetching


STOP_AFTER_KNOWN = 5
"""Known papers in a row after which a daily fetch stops paging (see `ArxivSource.newest`)."""


def _never_known(arxiv_id: str) -> bool:
    return False


class ArxivSource:
    """The newest papers of a query, fetched politely from arXiv's API (or a mirror).

    One instance keeps arXiv's rule for all of its requests, whichever thread makes them: one
    request at a time, the next at least `delay` seconds after the previous one ended. A
    failed request is retried `retries` times, waiting `delay + backoff * 2**n` seconds; an
    unexpectedly empty page is retried as often by `arxiv` itself, `delay` seconds apart.

    Example: ArxivSource("https://export.arxiv.org/api/query").probe("ti:MLLM", limit=3)
    """

    def __init__(
        self,
        api_url: str,
        delay: float = 3.0,
        timeout: float = 30.0,
        retries: int = 3,
        page_size: int = 100,
        backoff: float = 1.0,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.api_url = api_url
        self.page_size = page_size
        self.retries = retries
        self._session = _CheckedSession(delay, timeout, retries, backoff)

    def newest(
        self,
        query: str,
        limit: int,
        is_known: Callable[[str], bool] = _never_known,
        stop_after_known: int | None = STOP_AFTER_KNOWN,
        skipped: list[str] | None = None,
    ) -> Iterator[FetchedPaper]:
        """Up to `limit` papers matching `query`, newest submission first, fetched lazily.

        Pages are requested only as the caller iterates. Once `stop_after_known` papers in a
        row are known (`is_known(arxiv_id)` is true), no more pages are requested: on a daily
        fetch everything after them was seen yesterday, so a topic costs one or two requests.
        Known papers are still yielded (the caller may link them to another topic).
        `is_known` is asked *before* a paper is yielded, so storing the paper while iterating
        does not make it count as known. `stop_after_known=None` fetches all `limit` papers.

        An entry that is not a paper we can store is left out, and said in `skipped`
        ("<id>: <reason>"); the others still come.

        Raises `FetchError` (while iterating) when arXiv gives no usable answer.
        """
        if limit < 1:
            return
        client = _Client(self.api_url, self._session, min(self.page_size, limit), self.retries)
        known_in_a_row = 0
        for paper in _papers(client, _newest_first(query, limit), skipped):
            known_in_a_row = known_in_a_row + 1 if is_known(paper.arxiv_id) else 0
            yield paper
            if stop_after_known is not None and known_in_a_row >= stop_after_known:
                logger.info("%d known papers in a row: not fetching more", known_in_a_row)
                return

    def probe(self, query: str, limit: int = 10) -> tuple[int, list[FetchedPaper]]:
        """How many papers arXiv has for `query`, and the newest `limit` of them: one request.

        (A second one only if arXiv sends a first page shorter than asked, which it may do.)

        Example: total, papers = source.probe('ti:"diffusion model" AND cat:cs.CV', limit=5)
        """
        size = max(limit, 1)  # a request for 0 results would ask arXiv for its default
        client = _Client(self.api_url, self._session, size, self.retries)
        self._session.last_total_results = 0
        papers = list(_papers(client, _newest_first(query, size)))
        return self._session.last_total_results, papers[: max(limit, 0)]

    def by_ids(
        self, arxiv_ids: Sequence[str], skipped: list[str] | None = None
    ) -> list[FetchedPaper]:
        """The latest version of each of these papers that arXiv has, asked with `id_list`,
        `page_size` ids a request (arXiv's rule kept between them as between all requests).
        Ids arXiv does not know are simply absent from the answer.

        Example: source.by_ids(["1707.08567", "hep-th/9901001"])
        """
        ids = list(dict.fromkeys(arxiv_ids))
        found: list[FetchedPaper] = []
        for start in range(0, len(ids), self.page_size):
            batch = ids[start : start + self.page_size]
            client = _Client(self.api_url, self._session, len(batch), self.retries)
            search = arxiv.Search(id_list=batch, max_results=len(batch))
            found.extend(_papers(client, search, skipped))
        return found


def _newest_first(query: str, limit: int) -> arxiv.Search:
    return arxiv.Search(
        query=query,
        max_results=limit,
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Descending,
    )


def _papers(
    client: arxiv.Client, search: arxiv.Search, skipped: list[str] | None = None
) -> Iterator[FetchedPaper]:
    """The search's results as `FetchedPaper`s, with `arxiv`'s exceptions turned into ours;
    an entry that cannot be read is said in `skipped` and left out."""
    results = client.results(search)
    while True:
        try:
            result = next(results)
        except StopIteration:
            return
        except arxiv.UnexpectedEmptyPageError as error:
            raise ArxivBadResponse(
                "arXiv returned an empty page where more results were due "
                f"(tried {error.retry + 1} times) — GET {error.url}"
            ) from error
        except arxiv.ArxivError as error:  # not raised today (our session checks first)
            raise FetchError(f"arXiv request failed: {error}") from error
        except FetchError:
            raise
        except Exception as error:  # the feed parser choked: the pages after it are lost too
            raise ArxivBadResponse(
                f"arXiv's answer could not be read ({type(error).__name__}: {error})"
            ) from error
        try:
            paper = paper_from_result(result)
        except Exception as error:  # one entry, never the topic
            reason = f"{str(getattr(result, 'entry_id', '?'))[:80]}: {error}"
            logger.debug("arXiv entry left out: %s", reason, exc_info=True)
            if skipped is not None:
                skipped.append(reason)
            continue
        yield paper


class _Client(arxiv.Client):
    """`arxiv.Client` pointed at our server, requesting through our checked session.

    Its own delay is off: the session keeps the delay for every request, retries included.
    Its own retries only ever see empty pages (the session raises ours for everything else).
    """

    def __init__(
        self, api_url: str, session: _CheckedSession, page_size: int, retries: int
    ) -> None:
        super().__init__(page_size=page_size, delay_seconds=0.0, num_retries=retries)
        self.query_url_format = api_url + "?{}"
        self._session = session


class _Failed(AttemptFailed):
    """One attempt failed: what to raise (`kind`) if it was the last one, and whether to retry."""

    def __init__(self, kind: type[FetchError], problem: str, retry: bool = True) -> None:
        super().__init__(problem)
        self.kind = kind
        self.problem = problem
        self.retry = retry


class _CheckedSession(requests.Session):
    """A session whose `get` is throttled, has a timeout, retries, and checks the answer.

    `arxiv` calls only `get(url, headers=...)`; what it receives is always a 200 response
    carrying a genuine Atom feed without error entries. Everything else raises a
    `FetchError` here, so the parser never mistakes a failure for an empty result.
    """

    def __init__(self, delay: float, timeout: float, retries: int, backoff: float) -> None:
        super().__init__()
        self.delay = delay
        self.timeout = timeout
        self.retries = max(retries, 0)
        self.backoff = backoff
        self.headers["User-Agent"] = USER_AGENT
        self._turn = threading.Lock()  # one connection at a time, as arXiv asks
        self._last_request_end: float | None = None
        self._local = threading.local()

    @property
    def last_total_results(self) -> int:
        """arXiv's `totalResults` in the last feed this thread received."""
        return getattr(self._local, "total_results", 0)

    @last_total_results.setter
    def last_total_results(self, value: int) -> None:
        self._local.total_results = value

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = url.decode() if isinstance(url, bytes) else url
        kwargs.pop("headers", None)  # arxiv's user-agent; ours says who we are
        try:
            return call_with_retries(
                lambda: self._get_once(url, **kwargs),
                attempts=self.retries + 1,
                retry=retry_if_exception(lambda error: isinstance(error, _Failed) and error.retry),
                # The wait comes on top of the delay: an overloaded arXiv needs more than 3 s.
                wait=wait_fixed(self.delay) + wait_exponential(multiplier=self.backoff, max=120),
                logger=logger,
                what="arXiv request",
            )
        except _Failed as failure:
            tried = failure.attempts
            after = f" (gave up after {tried} attempts)" if tried > 1 else ""
            raise failure.kind(f"{failure.problem} — GET {url}{after}") from failure.__cause__

    def _get_once(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        with self._turn:
            self._wait_for_turn()
            try:
                response = super().get(url, **kwargs)
                response.content  # noqa: B018 - read the whole body inside our turn
            except requests.Timeout as error:
                metrics.arxiv_request("timeout")
                timeout = kwargs["timeout"]
                raise _Failed(ArxivUnavailable, f"no answer within {timeout:g} s") from error
            except requests.RequestException as error:
                metrics.arxiv_request("unreachable")
                problem = f"could not reach arXiv: {_reason(error)}"
                raise _Failed(ArxivUnavailable, problem) from error
            finally:
                self._last_request_end = time.monotonic()
        self.last_total_results = _check(response)
        metrics.arxiv_request("ok")
        return response

    def _wait_for_turn(self) -> None:
        if self._last_request_end is None:
            return
        remaining = self._last_request_end + self.delay - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _check(response: requests.Response) -> int:
    """The feed's totalResults, if `response` is a usable feed; else raise `_Failed`."""
    body = response.content
    status = response.status_code
    described = f"HTTP {status}, {response.headers.get('Content-Type') or 'no content type'}"
    if body.strip().startswith(b"Rate exceeded"):
        metrics.arxiv_request("rate_limited")
        problem = f"arXiv is rate limiting us: it answered 'Rate exceeded.' ({described})"
        raise _Failed(ArxivRateLimited, problem)
    feed = _parse_atom(body)
    if feed is not None:
        for entry in feed.iterfind(f"{ATOM}entry"):
            # arXiv reports a bad query as a feed with one entry titled "Error" (the parser
            # skips it for lacking <published>, leaving an empty, "successful" result).
            if "/api/errors" in (entry.findtext(f"{ATOM}id") or ""):
                metrics.arxiv_request("refused")
                message = " ".join((entry.findtext(f"{ATOM}summary") or "").split())
                problem = f"arXiv rejected the query: {message} ({described})"
                raise _Failed(ArxivQueryError, problem, retry=False)
    if status != 200:
        metrics.arxiv_request(metrics.http_outcome(status))
        problem = f"arXiv answered HTTP {status} {response.reason or ''}".rstrip()
        problem += f": {_gist(body)!r}" if body.strip() else " with an empty body"
        transient = status in (408, 429) or status >= 500
        raise _Failed(ArxivUnavailable if transient else ArxivQueryError, problem, retry=transient)
    if feed is None:
        metrics.arxiv_request("bad_answer")
        if re.match(rb"\s*(<!doctype html|<html)", body, re.IGNORECASE):
            what = "an HTML page instead of an Atom feed"
        else:
            what = "something that is not an Atom feed"
        problem = f"arXiv answered {what} ({described}, {len(body)} bytes): {_gist(body)!r}"
        raise _Failed(ArxivBadResponse, problem)
    total = feed.findtext(f"{OPENSEARCH}totalResults")
    return int(total) if total and total.strip().isdigit() else 0


def _parse_atom(body: bytes) -> Any | None:
    """The root of `body` if it is an Atom feed, else None. Never fetches or expands anything."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    return root if root is not None and root.tag == f"{ATOM}feed" else None


def _gist(body: bytes, length: int = 200) -> str:
    """What a human would read first in an error page: its <title>, or its first text."""
    text = body.decode("utf-8", errors="replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        text = title.group(1)
    else:
        text = re.sub(r"<!--.*?-->|<[^>]*>", " ", text, flags=re.DOTALL)
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _reason(error: requests.RequestException) -> str:
    """The useful end of a requests error: `[Errno 111] Connection refused`, not the pool dump."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return errno.group().strip() if errno else f"{type(error).__name__}: {text}"
