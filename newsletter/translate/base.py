"""What every provider shares: the `Translator` interface, its errors, the time budget, and an
HTTP client that retries what is worth retrying (429, 5xx, timeouts) within that budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import requests
from tenacity import RetryCallState, retry_if_exception_type

from newsletter import metrics
from newsletter.config import mask_url_password
from newsletter.errors import TranslationError
from newsletter.retrying import AttemptFailed, call_with_retries

logger = logging.getLogger(__name__)

USER_AGENT = "arxiv-newsletter ({purpose})"
MAX_RETRY_AFTER = 60.0
"""Longest wait a server's Retry-After is obeyed for; beyond it the budget decides."""


class Translator(Protocol):
    """Translates English texts into one language: one output per input, in order.

    Raises `TranslatorUnavailable` (worth trying later), `TranslatorRefused` (the request is
    wrong: a key, a language) or `TranslatorBadAnswer` (the reply cannot be read).
    """

    name: str

    def translate(self, texts: list[str], target: str) -> list[str]: ...


class TranslatorUnavailable(TranslationError):
    """The translator did not answer usefully in time (429, 5xx, timeouts): try again later."""


class TranslatorRefused(TranslationError):
    """The translator refused the request itself; asking again the same way will not help."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        """True when no other request can succeed either (a bad key, a spent quota)."""


class TranslatorBadAnswer(TranslationError):
    """The translator answered, but not in the form its protocol promises."""


class Budget:
    """Time left for translation work: a deadline on the monotonic clock, or none."""

    def __init__(self, seconds: float | None = None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + max(seconds, 0.0)

    def left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return max(self.deadline - time.monotonic(), 0.0)

    @property
    def spent(self) -> bool:
        return self.left() <= 0.0


def batches(items: Sequence, size: int) -> Iterator[list]:
    size = max(size, 1)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _Retryable(AttemptFailed):
    """One attempt failed in a way that may pass (429, 5xx, timeout, connection)."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


class HttpClient:
    """JSON over HTTP with a timeout on every request, retries with exponential backoff for
    429, 5xx, timeouts and refused connections, and a shared time budget: no wait, and no
    request, outlasts it. A server's Retry-After is obeyed (up to a minute).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        budget: Budget | None = None,
        purpose: str = "translation",
    ) -> None:
        self.purpose = purpose
        """What the requests are for (`translation`, `summary`): in the User-Agent and logs."""
        self.timeout = timeout
        self.retries = max(retries, 0)
        self.backoff = backoff
        self.budget = budget or Budget()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT.format(purpose=purpose)

    def get_json(
        self, url: str, params: Sequence[tuple[str, str]], headers: dict[str, str] | None = None
    ) -> Any:
        return self.request("GET", url, params=list(params), headers=headers or {})

    def post_json(self, url: str, payload: object, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", url, json=payload, headers=headers or {})

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded JSON answer, after retries; raises one of the `TranslationError`s."""
        try:
            return call_with_retries(
                lambda: self._once(method, url, **kwargs),
                attempts=self.retries + 1,
                retry=retry_if_exception_type(_Retryable),
                wait=self._wait,
                give_up=lambda state: self._wait(state) >= self.budget.left(),
                logger=logger,
                what=f"{self.purpose} request",
            )
        except _Retryable as failure:
            tried = failure.attempts
            spent = " (time budget spent)" if self.budget.spent else ""
            raise TranslatorUnavailable(
                f"{failure} — {method} {_without_query(url)} (tried {tried} times){spent}"
            ) from failure

    def _wait(self, state: RetryCallState) -> float:
        exponential = self.backoff * 2 ** (state.attempt_number - 1)
        failure = state.outcome.exception() if state.outcome else None
        retry_after = getattr(failure, "retry_after", None) or 0.0
        return max(exponential, min(retry_after, MAX_RETRY_AFTER))

    def _once(self, method: str, url: str, **kwargs: Any) -> Any:
        left = self.budget.left()
        if left <= 0:
            raise _Retryable(f"no time left in the {self.purpose} budget")
        try:
            response = self.session.request(method, url, timeout=min(self.timeout, left), **kwargs)
        except requests.Timeout as error:
            metrics.translator_request("timeout")
            raise _Retryable(f"no answer within {min(self.timeout, left):.0f} s") from error
        except requests.ConnectionError as error:
            metrics.translator_request("unreachable")
            raise _Retryable(f"cannot connect: {error.__class__.__name__}") from error
        except requests.RequestException as error:  # a malformed address, too many redirects
            metrics.translator_request("unreachable")
            raise TranslatorRefused(
                f"request impossible: {error.__class__.__name__} — {_without_query(url)}",
                fatal=True,
            ) from error
        status = response.status_code
        if status >= 400:
            metrics.translator_request(metrics.http_outcome(status))
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {_snippet(response.text)}", _retry_after(response))
        if status >= 400:
            raise TranslatorRefused(
                f"HTTP {status}: {_snippet(response.text)} — {method} {_without_query(url)}",
                # A bad key, a spent quota (DeepL's 456), a wrong address: no request can pass.
                fatal=status in (401, 403, 404, 405, 456),
            )
        try:
            answer = response.json()
        except ValueError as error:
            metrics.translator_request("bad_answer")
            raise TranslatorBadAnswer(
                f"not JSON: {_snippet(response.text)} — {method} {_without_query(url)}"
            ) from error
        metrics.translator_request("ok")
        return answer


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _without_query(url: str) -> str:
    # The text to translate travels in Google's query string, a key may too, and a password
    # in the userinfo of NEWSLETTER_TRANSLATOR_URL: keep them all out of messages. Masked
    # first, so that a "?" in the password cannot decide where the query starts.
    return mask_url_password(url).split("?", 1)[0]
