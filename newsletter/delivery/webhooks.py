"""Posting webhook deliveries: signed the Standard Webhooks way, one attempt at a time, each
bounded by NEWSLETTER_WEBHOOK_TIMEOUT, retried later with exponential backoff.

Sends never wait for this: what makes an event only writes its rows (`store.queue_event`);
they are posted here, by the worker's `post_webhooks` task (queued after events, and every
minute) or at the end of `newsletter send` / `run` (within NEWSLETTER_WEBHOOK_SEND_BUDGET).

Each attempt is signed anew: `webhook-id` (the event's id, the same on every retry),
`webhook-timestamp` (this attempt's, in Unix seconds) and `webhook-signature: v1,<base64 of
HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the secret's base64 after
`whsec_`. A 2xx answer is sent; a timeout, a connection error, 408, 429 or 5xx is tried again
after NEWSLETTER_WEBHOOK_RETRY_BACKOFF × 2ⁿ (or the endpoint's longer Retry-After), up to
NEWSLETTER_WEBHOOK_MAX_ATTEMPTS; any other answer (a 4xx, a redirect, which is never followed
with a signed body) fails at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.intake.webhooks import secret_key
from newsletter.models import utcnow

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
"""Answers besides 5xx that say "later": a request timeout, too many requests."""
MAX_RETRY_AFTER = 3600.0
"""The longest Retry-After honoured, in seconds: an endpoint cannot park a delivery for days."""
LEASE_MARGIN = 30.0
"""Seconds a claim outlasts one attempt's timeout (the time to write its outcome)."""
USER_AGENT = "arxiv-newsletter-webhooks/1"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value: `v1,` and the base64 HMAC-SHA256 of
    `{id}.{timestamp}.{body}` under the secret's key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Answer:
    """How one attempt went."""

    ok: bool
    retry: bool
    """Worth trying again later (a timeout, a connection error, 408, 429, 5xx)."""
    detail: str
    """One line: the status and the start of the body, or the error."""
    retry_after: float | None = None


def post(url: str, secret: str, payload: dict, timeout: float) -> Answer:
    """One signed attempt to post `payload`; never raises for what the endpoint did."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": payload["id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, payload["id"], timestamp, body),
    }
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        return Answer(False, True, f"no answer within {timeout:g} s")
    except requests.RequestException as error:
        return Answer(False, True, f"could not connect: {_one_line(str(error))}")
    said = _one_line(response.text[:200])
    detail = f"{response.status_code} {response.reason or ''}".strip() + (
        f": {said}" if said else ""
    )
    if 200 <= response.status_code < 300:
        return Answer(True, False, detail)
    retry = response.status_code >= 500 or response.status_code in RETRY_STATUSES
    if 300 <= response.status_code < 400:
        detail += " (redirects are not followed: register the URL it points to)"
    return Answer(False, retry, detail, retry_after(response.headers.get("Retry-After")))


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number, or an HTTP date), at most an hour."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class WebhookReport:
    """What one posting round did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"Webhooks: {self.sent} posted, {self.retrying} to retry later,"
            f" {self.failed} given up on."
        )

    @property
    def posted_any(self) -> bool:
        return bool(self.sent or self.retrying or self.failed)


def post_due(settings: Settings, budget: float | None = None) -> WebhookReport:
    """Post the deliveries due now, oldest first, until none is left or `budget` seconds are
    spent (None: no limit); an attempt already started ends within its timeout. Each is tried
    once a round: a retry comes due after this round began, so it waits for the next."""
    report = WebhookReport()
    deadline = None if budget is None else time.monotonic() + budget
    lease = timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)
    started = utcnow()
    while deadline is None or time.monotonic() < deadline:
        with session_scope(settings) as session:
            due = store.claim_webhook_delivery(session, started, utcnow() + lease)
        if due is None:
            break
        answer = post(due.url, due.secret, due.payload, settings.webhook_timeout)
        _record(settings, due, answer, report)
    return report


def _record(
    settings: Settings, due: store.DueWebhook, answer: Answer, report: WebhookReport
) -> None:
    attempts = due.attempts + 1
    with session_scope(settings) as session:
        if answer.ok:
            store.record_webhook_attempt(session, due.delivery_id, "sent", answer.detail)
            report.sent += 1
            return
        if not answer.retry or attempts >= settings.webhook_max_attempts:
            why = "" if answer.retry else " (not retried)"
            detail = f"gave up after {attempts} attempt(s): {answer.detail}{why}"
            store.record_webhook_attempt(session, due.delivery_id, "failed", detail)
            report.failed += 1
            report.errors.append(f"webhook {due.webhook_id} {due.url}: {detail}")
            log.warning("webhook %d (%s): %s", due.webhook_id, due.url, detail)
            return
        wait = settings.webhook_retry_backoff * 2 ** (attempts - 1)
        wait = max(wait, answer.retry_after or 0.0)
        store.record_webhook_attempt(
            session,
            due.delivery_id,
            "pending",
            f"attempt {attempts}: {answer.detail}; retried in {wait:g} s",
            utcnow() + timedelta(seconds=wait),
        )
        report.retrying += 1
