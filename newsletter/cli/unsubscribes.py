"""`newsletter unsubscribes …`: act on the unsubscribe requests mailed to the digest's address."""

from __future__ import annotations

import typer

from newsletter.cli.bounces import Mailbox, show_inbox_report
from newsletter.cli.common import NewsletterGroup, ready_settings
from newsletter.inbound.reader import UNSUBSCRIBES, read_inbox

app = typer.Typer(
    cls=NewsletterGroup, help="Unsubscribe requests sent by email (List-Unsubscribe's mailto:)."
)


@app.command("import")
def import_(path: Mailbox) -> None:
    """Unsubscribe the senders of the requests mail clients send to List-Unsubscribe's mailto.

    A request is a message whose subject is `unsubscribe <token>`; the signed token, not the
    From address (anyone can forge that), says who leaves. Requests without a valid token
    change nothing and are listed for you to check. Other messages are skipped, so the
    mailbox that also receives bounces can be read as it is, and so are requests read before.
    Example: newsletter unsubscribes import /var/mail/digest.mbox
    """
    report = read_inbox(ready_settings(), path, kinds=(UNSUBSCRIBES,))
    show_inbox_report(report, (UNSUBSCRIBES,))
