"""`newsletter bounces …`: act on the delivery status notifications the mail server sent back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import NewsletterGroup, console, ready_settings
from newsletter.inbox import BOUNCES, read_inbox

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
    report = read_inbox(ready_settings(), path, kinds=(BOUNCES,))
    for line in report.lines:
        console.print(line, markup=False)
    outcomes = report.bounces
    console.print(
        f"{sum(outcomes.values())} report(s): {outcomes['bounced']} bounced,"
        f" {outcomes['counted']} counted, {outcomes['ignored']} temporary or repeated,"
        f" {outcomes['unknown']} for addresses not on the list;"
        f" {report.read_before} read before."
    )
