"""`newsletter unsubscribes …`: act on the unsubscribe requests mailed to the digest's address."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import NewsletterGroup, console, ready_settings, session
from newsletter.unsubscribe_mail import apply_request, read_requests

app = typer.Typer(
    cls=NewsletterGroup, help="Unsubscribe requests sent by email (List-Unsubscribe's mailto:)."
)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A .eml file or an mbox of received mail.")],
) -> None:
    """Unsubscribe the senders of the requests mail clients send to List-Unsubscribe's mailto.

    A request is a message whose subject is `unsubscribe <token>`; the signed token, not the
    From address (anyone can forge that), says who leaves. Requests without a valid token
    change nothing and are listed for you to check. Other messages are skipped, so the
    mailbox that also receives bounces can be read as it is.
    Example: newsletter unsubscribes import /var/mail/digest.mbox
    """
    secret = ready_settings().secret()
    outcomes: Counter[str] = Counter()
    with session() as unit:
        for request in read_requests(path):
            outcome = apply_request(unit, secret, request)
            outcomes[outcome] += 1
            if outcome in ("invalid", "unverified"):
                why = "no token" if outcome == "unverified" else "a token that does not verify"
                console.print(
                    f"not acted on  {request.sender or '(no sender)'}  ({why}; {request.source})",
                    markup=False,
                )
    console.print(
        f"{sum(outcomes.values())} request(s): {outcomes['unsubscribed']} unsubscribed,"
        f" {outcomes['already']} already gone, {outcomes['invalid'] + outcomes['unverified']}"
        " not acted on."
    )
