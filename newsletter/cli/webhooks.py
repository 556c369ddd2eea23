"""`newsletter webhooks …`: tell other programs what happens (a digest built or sent, a reader
confirmed, gone or bounced) by signed HTTP POSTs (see `delivery.webhooks`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import (
    NewsletterGroup,
    console,
    err_console,
    open_session,
    print_json,
    ready_settings,
)
from newsletter.config import get_settings
from newsletter.delivery.webhooks import WebhookReport, post, post_due
from newsletter.intake.webhooks import EVENTS, TEST_EVENT, WebhookSpec, envelope, new_secret
from newsletter.intake.webhooks import shown_url as url_shown

app = typer.Typer(
    cls=NewsletterGroup,
    help="Webhooks: signed HTTP POSTs to your URLs when a digest is built or sent, or a"
    " subscriber confirms, leaves or bounces.",
)

WebhookId = Annotated[
    int, typer.Argument(help="The webhook's id (see `newsletter webhooks list`).")
]


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="Where to POST the events: an http(s) URL.")],
    event: Annotated[
        list[str],
        typer.Option("--event", "-e", help=f"An event to send it (repeat): {', '.join(EVENTS)}."),
    ],
) -> None:
    """Register a URL for events, and print its signing secret (shown this once).

    Example: newsletter webhooks add https://lab.example.org/hook -e digest.sent -e digest.built
    """
    spec = WebhookSpec(url, tuple(event))
    secret = new_secret()
    with open_session() as session:
        webhook = store.add_webhook(session, spec, secret)
        webhook_id = webhook.id
    console.print(
        f"Added webhook {webhook_id}: {url_shown(spec.url)} for {', '.join(spec.events)}."
    )
    console.print(f"Its signing secret (shown only now; keep it with the receiver): {secret}")


@app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the webhooks and their events (never their secrets).

    Example: newsletter webhooks list --json
    """
    with open_session() as session:
        rows = [
            {
                "id": webhook.id,
                "url": url_shown(webhook.url),
                "events": list(webhook.events),
                "active": webhook.active,
                "created_at": webhook.created_at.isoformat(timespec="seconds"),
            }
            for webhook in store.list_webhooks(session)
        ]
    if json:
        print_json(rows)
        return
    if not rows:
        console.print("No webhooks yet: add one with `newsletter webhooks add URL --event NAME`.")
        return
    table = Table("Id", "URL", "Events", "Active")
    for row in rows:
        table.add_row(str(row["id"]), row["url"], ", ".join(row["events"]), str(row["active"]))
    console.print(table)


@app.command()
def remove(webhook_id: WebhookId) -> None:
    """Remove a webhook and its deliveries, posted or not.

    Example: newsletter webhooks remove 2
    """
    with open_session() as session:
        store.remove_webhook(session, webhook_id)
    console.print(f"Removed webhook {webhook_id}.")


@app.command()
def test(webhook_id: WebhookId) -> None:
    """Post a signed `webhook.test` event to a webhook now and print its answer.

    Nothing is stored or retried. Exits with 1 unless the answer is a 2xx.
    Example: newsletter webhooks test 1
    """
    settings = ready_settings()
    with open_session() as session:
        webhook = store.webhook_by_id(session, webhook_id)
        url, secret = webhook.url, webhook.secret
    payload = envelope(TEST_EVENT, {"webhook_id": webhook_id})
    answer = post(url, secret, payload, settings.webhook_timeout)
    console.print(f"{url_shown(url)} answered: {answer.detail}")
    if not answer.ok:
        raise typer.Exit(code=1)


@app.command()
def deliveries(
    failed: Annotated[bool, typer.Option("--failed", help="Only those given up on.")] = False,
    webhook: Annotated[
        int | None, typer.Option("--webhook", "-w", help="Only this webhook's.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the recent deliveries: event, state, attempts, next try, the endpoint's last answer.

    Example: newsletter webhooks deliveries --failed
    """
    with open_session() as session:
        rows = [
            {
                "id": row.id,
                "webhook_id": row.webhook_id,
                "event": row.event,
                "status": row.status,
                "attempts": row.attempts,
                "not_before": row.not_before.isoformat(timespec="seconds")
                if row.not_before and row.status == "pending"
                else None,
                "created_at": row.created_at.isoformat(timespec="seconds"),
                "detail": row.detail,
            }
            for row in store.recent_webhook_deliveries(
                session, limit, failed_only=failed, webhook_id=webhook
            )
        ]
    if json:
        print_json(rows)
        return
    table = Table("Id", "Webhook", "Event", "State", "Attempts", "Next try (UTC)", "Last answer")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["webhook_id"]),
            row["event"],
            row["status"],
            str(row["attempts"]),
            row["not_before"] or "",
            row["detail"],
        )
    console.print(table)


@app.command()
def retry(
    delivery_id: Annotated[
        list[int] | None,
        typer.Argument(help="Failed deliveries to try again (default: every failed one)."),
    ] = None,
) -> None:
    """Try failed deliveries again from a first attempt, posting what is due now.

    Posting stops after NEWSLETTER_WEBHOOK_SEND_BUDGET seconds; the worker or the next
    `newsletter send` posts the rest.
    Example: newsletter webhooks retry 17 18
    """
    settings = ready_settings()
    with open_session() as session:
        again = store.retry_webhook_deliveries(session, delivery_id or ())
    console.print(f"{again} failed deliveries are pending again.")
    show_posted(post_due(settings, settings.webhook_send_budget))


def post_pending() -> None:
    """What `send` and `run` do once their mail is out: post the due webhooks within
    NEWSLETTER_WEBHOOK_SEND_BUDGET (a worker, when one runs, shares the rows)."""
    settings = get_settings()
    if settings.webhook_send_budget > 0:
        show_posted(post_due(settings, settings.webhook_send_budget))


def show_posted(report: WebhookReport) -> None:
    if report.posted_any:
        console.print(report.summary())
    for error in report.errors:
        err_console.print(f"Warning: {error}")
