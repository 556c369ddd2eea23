"""`newsletter bounces …`: act on the delivery status notifications the mail server sent back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import NewsletterGroup, console, ready_settings
from newsletter.inbound.reader import BOUNCES, InboxReport, read_inbox

app = typer.Typer(cls=NewsletterGroup, help="Bounces: mark addresses that cannot receive mail.")

Mailbox = Annotated[
    Path, typer.Argument(help="An mbox, a Maildir folder or one .eml file of received mail.")
]


@app.command("import")
def import_(path: Mailbox) -> None:
    """Read RFC 3464 bounce reports and mark hard-bounced subscribers.

    An unknown address (5.1.x) is marked bounced at once, other permanent failures after 3;
    temporary ones (4.x.x) change nothing. Bounced subscribers get no more digests. A report
    read before (the same Message-ID) is skipped, so the same mailbox can be read again.
    Example: newsletter bounces import /var/mail/digest-bounces.mbox
    """
    show_inbox_report(read_inbox(ready_settings(), path, kinds=(BOUNCES,)), (BOUNCES,))


def show_inbox_report(report: InboxReport, kinds: tuple[str, ...]) -> None:
    """What a read of the mailbox did: a line per subscriber concerned and per message that
    could not be read (at every read: it is still there, acted on by nobody), then the counts."""
    for line in report.lines + report.still_unreadable:
        console.print(line, markup=False)
    console.print(report.summary(kinds), markup=False)
