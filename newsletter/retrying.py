"""Retrying a request the way this project's HTTP clients (arXiv, the translators) do it.

A tenacity loop that tries a call at most `attempts` times, logs a warning before each retry,
and lets the failure that ends it propagate as it is (not as tenacity's `RetryError`), telling
the caller how many attempts were made. What is retried and how long to wait is the caller's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying
from tenacity.retry import RetryBaseT
from tenacity.wait import WaitBaseT

__all__ = ["AttemptFailed", "call_with_retries"]

T = TypeVar("T")


class AttemptFailed(Exception):
    """One attempt failed. When this failure ends `call_with_retries`, `attempts` is the number
    of attempts made, this one included."""

    attempts: int = 1


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int,
    retry: RetryBaseT,
    wait: WaitBaseT,
    logger: logging.Logger,
    what: str,
    give_up: Callable[[RetryCallState], bool] | None = None,
) -> T:
    """`call()`'s result, after at most `attempts` attempts.

    An attempt is repeated when `retry` says so, after the pause `wait` gives, unless `attempts`
    are used up or `give_up` (if given) says to stop; before each repeat, `logger` warns
    "<what> failed (attempt 1 of 3), retrying: <the failure>". The failure that ends it is
    raised as it is; an `AttemptFailed` carries the number of attempts made.
    """

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= attempts or (give_up is not None and give_up(state))

    def warn(state: RetryCallState) -> None:
        logger.warning(
            "%s failed (attempt %d of %d), retrying: %s",
            what,
            state.attempt_number,
            attempts,
            state.outcome.exception() if state.outcome else "",
        )

    retrying = Retrying(stop=stop, wait=wait, retry=retry, before_sleep=warn, reraise=True)
    tried = 0
    try:
        for attempt in retrying:
            with attempt:
                tried = attempt.retry_state.attempt_number
                return call()
    except AttemptFailed as failure:
        failure.attempts = tried
        raise
    raise AssertionError("unreachable: tenacity either returns or raises")
