"""`newsletter bounces …`: act on the delivery status notifications the mail server sent back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from newsletter import store
from newsletter.bounces import read_bounces
from newsletter.cli.common import NewsletterGroup, console, session

app = typer.Typer(cls=NewsletterGroup, help="Bounces: mark addresses that cannot receive mail.")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A .eml file or an mbox of bounce messages.")],
) -> None:
    """Read RFC 3464 bounce reports and mark hard-bounced subscribers.

    An unknown address (5.1.x) is marked bounced at once, other permanent failures after 3;
    temporary ones (4.x.x) change nothing. Bounced subscribers get no more digests.
    Example: newsletter bounces import /var/mail/digest-bounces.mbox
    """
    outcomes: Counter[str] = Counter()
    with session() as unit:
        for bounce in read_bounces(path):
            outcome = store.record_bounce(unit, bounce)
            outcomes[outcome] += 1
            if outcome in ("bounced", "counted"):
                console.print(
                    f"{outcome:>8}  {bounce.recipient}  {bounce.status} {bounce.diagnostic}"
                )
    console.print(
        f"{sum(outcomes.values())} report(s): {outcomes['bounced']} bounced,"
        f" {outcomes['counted']} counted, {outcomes['ignored']} temporary or repeated,"
        f" {outcomes['unknown']} for addresses not on the list."
    )
