"""What a bounce means: a permanent or temporary failure, an unknown user, and when hard
failures mark an address bounced; applied from an SMTP reply or a returned report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.models import SubscriberStatus

STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


HARD_FAILURES_BEFORE_BOUNCED = 3
"""Hard failures other than an unknown address that mark a subscriber bounced."""


@dataclass(frozen=True)
class Bounce:
    """One recipient's outcome in a DSN (or an SMTP reply we classified the same way)."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""
    source: str = ""
    message_id: str = ""
    """The Message-ID of the message that failed, from the returned headers; "" if none."""

    @property
    def is_hard(self) -> bool:
        """A permanent failure (5.x.x): retrying will not help."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def is_unknown_user(self) -> bool:
        """5.1.x: the address does not exist (bad mailbox, bad domain): bounced at once."""
        return self.is_hard and self.status.startswith("5.1.")


def classify(bounce: Bounce, hard_failures_so_far: int) -> str:
    """What a bounce does to a subscriber: "bounced", "counted" (a hard failure) or "ignored"."""
    if bounce.is_unknown_user:
        return "bounced"
    if bounce.is_hard:
        return "bounced" if hard_failures_so_far + 1 >= HARD_FAILURES_BEFORE_BOUNCED else "counted"
    return "ignored"


def bounce_from_reply(recipient: str, code: int, text: str) -> Bounce:
    """An SMTP reply classified like a DSN: `550 5.1.1 no such user` → status 5.1.1."""
    enhanced = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", text)
    status = enhanced.group(1) if enhanced else f"{str(code)[0]}.0.0"
    action = "failed" if code >= 500 else "delayed"
    return Bounce(recipient, action, status, f"{code} {text}".strip(), "smtp")


def apply_bounce(session: Session, bounce: Bounce) -> str:
    """Apply a bounce to the subscriber it names: "bounced", "counted", "ignored" or "unknown".

    An unknown user (5.1.x) is bounced at once; other hard failures are counted and the third
    bounces the address; temporary ones (4.x.x) change nothing.
    """
    subscriber = store.find_subscriber(session, bounce.recipient)
    if subscriber is None:
        return "unknown"
    outcome = classify(bounce, subscriber.bounce_count)
    if outcome == "ignored":
        return outcome
    store.count_hard_failure(subscriber)
    detail = f"{bounce.status} {bounce.diagnostic}".strip()
    if outcome == "bounced":
        if not store.set_status(session, subscriber, SubscriberStatus.bounced, "bounce", detail):
            return "ignored"
    else:
        store.log_event(session, subscriber, "hard failure", "bounce", detail)
    return outcome
