"""The mail that comes back to the digest's address, acted on once: bounce reports (RFC 3464)
and unsubscribe requests (List-Unsubscribe's mailto:).

`newsletter bounces import`, `newsletter unsubscribes import` and, when NEWSLETTER_INBOX is
set, the worker every NEWSLETTER_INBOX_INTERVAL minutes read a mailbox through `read_inbox`.
Each message acted on is remembered by its Message-ID (`ReceivedMail`), so reading the same
mailbox again acts on nothing twice: a bounce report counts once however often it is read.
A message that cannot be read (too big, nested too deep, broken: see `mailboxes`) holds up no
other; every read lists it, and the worker logs it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.bounces import apply_bounce
from newsletter.inbound.dsn import bounces_in
from newsletter.inbound.mailboxes import PARSER_FAILURES, Received, read_messages, why_unreadable
from newsletter.inbound.unsubscribes import apply_request, request_in

BOUNCES = "bounce"
UNSUBSCRIBES = "unsubscribe"


@dataclass
class InboxReport:
    bounces: Counter[str] = field(default_factory=Counter)
    """What the bounce reports' recipients came to (`apply_bounce`'s outcomes)."""
    requests: Counter[str] = field(default_factory=Counter)
    """What the unsubscribe requests came to (`unsubscribes.apply_request`'s outcomes)."""
    read_before: int = 0
    """Messages skipped because an earlier read acted on them."""
    unreadable: int = 0
    """Messages that could not be made sense of (too big, too deep, too broken): none of
    them holds up the others, and each is listed at every read."""
    lines: list[str] = field(default_factory=list)
    """What is new at this read: a line for each subscriber a bounce marked or counted, each
    request not acted on, and each unreadable message no earlier read listed."""
    still_unreadable: list[str] = field(default_factory=list)
    """A line for each unreadable message an earlier read listed already."""

    def add(self, other: InboxReport) -> None:
        self.bounces.update(other.bounces)
        self.requests.update(other.requests)
        self.read_before += other.read_before
        self.unreadable += other.unreadable
        self.lines.extend(other.lines)
        self.still_unreadable.extend(other.still_unreadable)

    @property
    def acted_on(self) -> int:
        return sum(self.bounces.values()) + sum(self.requests.values())

    def summary(self, kinds: Collection[str] = (BOUNCES, UNSUBSCRIBES)) -> str:
        """One sentence per kind read, then the messages skipped as read before."""
        bounces, requests = self.bounces, self.requests
        parts = []
        if BOUNCES in kinds:
            parts.append(
                f"{sum(bounces.values())} report(s): {bounces['bounced']} bounced,"
                f" {bounces['counted']} counted, {bounces['ignored']} temporary or repeated,"
                f" {bounces['unknown']} for addresses not on the list,"
                f" {bounces['not ours']} about no digest we sent"
            )
        if UNSUBSCRIBES in kinds:
            not_acted_on = requests["invalid"] + requests["unverified"]
            parts.append(
                f"{sum(requests.values())} request(s): {requests['unsubscribed']} unsubscribed,"
                f" {requests['already']} already gone, {not_acted_on} not acted on"
            )
        unreadable = f"; {self.unreadable} unreadable" if self.unreadable else ""
        return "; ".join(parts) + f"; {self.read_before} read before{unreadable}."


def read_inbox(
    settings: Settings, path: Path, kinds: Collection[str] = (BOUNCES, UNSUBSCRIBES)
) -> InboxReport:
    """Act on the bounce reports and/or unsubscribe requests (`kinds`) of a mailbox (an mbox,
    a Maildir or one .eml file) not acted on before; other messages are skipped, and those
    that cannot be read are listed."""
    report = InboxReport()
    secret = settings.secret()
    with session_scope(settings) as session:
        for received in read_messages(path):
            part = InboxReport()
            problem = received.problem
            if received.message is not None:
                try:
                    with session.begin_nested():  # one message's work stands or falls alone
                        _act_on(session, secret, received, kinds, part)
                except PARSER_FAILURES as error:
                    part, problem = InboxReport(), why_unreadable(error)
            if problem:
                part = _unreadable(session, received.source, received.key, problem)
            report.add(part)
    return report


def _unreadable(session, source: str, key: str, problem: str) -> InboxReport:
    # A message we cannot make sense of must not hold up the others. It is listed at every
    # read (it is still there, acted on by nobody), but remembered, so that what is new at a
    # read (`lines`, which the worker logs every few minutes) names it only the first time.
    report = InboxReport(unreadable=1)
    line = _shown(f"unreadable  {source}  ({problem})")
    listed = ("unreadable " + key)[:255]  # never the key itself: readable later, it counts
    if store.mail_was_read(session, listed):
        report.still_unreadable.append(line)
    else:
        store.remember_mail(session, listed, "unreadable")
        report.lines.append(line)
    return report


def _act_on(
    session, secret: str, received: Received, kinds: Collection[str], report: InboxReport
) -> None:
    message, source = received.message, received.source
    # Parsed first, in memory: the database is asked only about the messages that matter.
    bounces = bounces_in(message, source) if BOUNCES in kinds else []
    request = request_in(message, source) if UNSUBSCRIBES in kinds else None
    if not bounces and request is None:
        return
    key = received.key
    if store.mail_was_read(session, key):
        report.read_before += 1
        return
    for bounce in bounces:
        if not store.sent_message_to(session, bounce.message_id, bounce.recipient):
            # Anyone can mail a report naming any address: only one about a digest we sent
            # to that address (its Message-ID is known only to us and the recipient's
            # servers) may bounce a subscriber.
            report.bounces["not ours"] += 1
            why = "names no digest we sent to that address"
            report.lines.append(_shown(f"not acted on  {bounce.recipient}  ({why}; {source})"))
            continue
        outcome = apply_bounce(session, bounce)
        report.bounces[outcome] += 1
        if outcome in ("bounced", "counted"):
            line = f"{outcome:>8}  {bounce.recipient}  {bounce.status} {bounce.diagnostic}"
            report.lines.append(_shown(line))
    if request is not None:
        outcome = apply_request(session, secret, request)
        report.requests[outcome] += 1
        if outcome in ("invalid", "unverified"):
            why = "no token" if outcome == "unverified" else "a token that does not verify"
            sender = request.sender or "(no sender)"
            report.lines.append(_shown(f"not acted on  {sender}  ({why}; {request.source})"))
    store.remember_mail(session, key, BOUNCES if bounces else UNSUBSCRIBES)


def _shown(line: str) -> str:
    """A line made of what strangers wrote (addresses, diagnostics), safe to print on a
    terminal or in a log: control characters (escape sequences) become "?"."""
    return "".join(char if char.isprintable() else "?" for char in line)[:500]
