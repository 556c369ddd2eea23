"""`newsletter status`: the workers, the queue, the latest digest's deliveries, what went wrong."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import ExitStatus, console, open_session, ready_settings
from newsletter.intake.webhooks import shown_url
from newsletter.worker import heartbeat


def status(
    failures: Annotated[int, typer.Option(help="How many failures to list.")] = 20,
) -> None:
    """Show the live workers and what they wait for, the queue, the next sends (by time and
    cadence, with how many readers each), the webhooks' deliveries by state with each one's
    last error, the latest digest's deliveries by state, and failures and retries with their
    reasons.

    Exits with 5 when the queue cannot be read (Redis down); the rest is shown all the same.
    Example: newsletter status --failures 50
    """
    settings = ready_settings()
    queue_ok, workers = _print_queue_and_workers(settings)
    with open_session() as session:
        slots = store.upcoming_slots(session, NEXT_SLOTS)
    _print_next_sends(slots)
    with open_session() as session:
        _print_webhooks(store.webhook_counts(session))
    with open_session() as session:
        digest = next(iter(store.list_digests(session)), None)
        if digest is None:
            console.print("No digest yet.")
            _exit_unless(queue_ok)
            return
        counts = store.delivery_counts(session, digest.id)
        in_flight = store.claims_in_flight(session, digest.id)
        failed = store.failed_deliveries(session, digest.id, failures)
        next_due = store.next_due_at(session, digest.id)
    table = Table("Digest", "pending", "sending", "sent", "failed", "skipped")
    table.add_row(
        digest.issue_date.isoformat(),
        *(str(counts.get(name, 0)) for name in ("pending", "sending", "sent", "failed", "skipped")),
    )
    console.print(table)
    for worker, count, lease in in_flight:
        console.print(f"In flight: {count} claimed by {worker} until {lease:%H:%M:%S} UTC")
    if next_due is not None and counts.get("pending", 0):
        overdue = queue_ok and not workers and next_due.timestamp() <= time.time()
        late = ": due, and no worker is alive to send it" if overdue else ""
        console.print(f"Next retry or take-over: {next_due:%Y-%m-%d %H:%M:%S} UTC{late}")
    for email, state, detail in failed:  # failed for good, or pending a retry: the last reply
        console.print(f"{state:>8}  {email}  {detail}")
    _exit_unless(queue_ok)


NEXT_SLOTS = 12
"""Upcoming send times `status` lists."""


def _print_next_sends(slots: list[store.Slot]) -> None:
    """The next sends: when, which cadence, how many readers (each reader's hour in their own
    zone, as one UTC time)."""
    if not slots:
        return
    table = Table("Next sends (UTC)", "cadence", "readers", title="Schedule")
    for slot in slots:
        when = "with each daily digest" if slot.at is None else f"{slot.at:%Y-%m-%d %a %H:%M}"
        table.add_row(when, slot.cadence, str(slot.readers))
    console.print(table)


def _print_webhooks(counts: list[store.WebhookCounts]) -> None:
    """Each webhook's deliveries: pending, sent, failed, and the last error its endpoint gave."""
    if not counts:
        return
    table = Table("Webhook", "pending", "sent", "failed", title="Webhooks")
    for row in counts:
        name = f"{row.webhook.id} {shown_url(row.webhook.url)}"
        if not row.webhook.active:
            name += " (inactive)"
        table.add_row(name, str(row.pending), str(row.sent), str(row.failed))
    console.print(table)
    for row in counts:  # a line each: an endpoint's answer is too long for a table's cell
        if row.last_error:
            console.print(f"Webhook {row.webhook.id} last error: {row.last_error}")


def _print_queue_and_workers(settings) -> tuple[bool, list[heartbeat.Beat]]:
    """Print the queue's depth and the live workers; (False, []) when Redis did not answer."""
    from newsletter.worker.outages import outage_of
    from newsletter.worker.tasks import queue_depth

    try:
        depth = queue_depth()
        workers = heartbeat.live_workers(settings)
    except Exception as error:
        outage = outage_of(error, settings)
        if outage is None:
            raise
        console.print(f"Queue: {outage.line()}: tasks and workers cannot be seen.")
        return False, []
    console.print(f"Queue: {depth['pending']} task(s) waiting, {depth['scheduled']} scheduled.")
    if not workers:
        console.print("Workers: none alive.")
    else:
        console.print(f"Workers: {len(workers)} alive.")
    now = time.time()
    for beat in workers:
        doing = "; ".join(beat.doing) or "idle"
        schedule = ", runs the schedule" if beat.periodic else ""
        console.print(
            f"  {beat.name}: {beat.threads} thread(s){schedule}, up {_span(now - beat.started)},"
            f" last beat {_span(now - beat.beat)} ago: {doing}"
        )
        for part in beat.down:
            console.print(f"    waiting: {part}")
    warning = heartbeat.idle_queue_warning(depth["pending"], workers)
    if warning:
        console.print(warning)
    return True, workers


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _exit_unless(queue_ok: bool) -> None:
    if not queue_ok:
        raise typer.Exit(code=ExitStatus.QUEUE)
