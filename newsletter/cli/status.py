"""`newsletter status`: the workers, the queue, the latest digest's deliveries, what went wrong."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import ExitStatus, console, ready_settings
from newsletter.intake.webhooks import shown_url
from newsletter.worker.report import JobReport, job_report


def status(
    failures: Annotated[int, typer.Option(help="How many failures to list.")] = 20,
) -> None:
    """Show the live workers and what they wait for, the queue, the next sends (by time and
    cadence, with how many readers each), the latest digest's deliveries by state, and
    failures and retries with their reasons.

    Exits with 5 when the queue cannot be read (Redis down); the rest is shown all the same.
    Example: newsletter status --failures 50
    """
    report = job_report(ready_settings(), failures)
    _print_queue_and_workers(report)
    _print_next_sends(report.slots)
    _print_webhooks(report.webhooks)
    digest, counts = report.digest, report.counts
    if digest is None:
        console.print("No digest yet.")
        _exit_unless(report.queue_ok)
        return
    table = Table("Digest", "pending", "sending", "sent", "failed", "skipped")
    table.add_row(
        digest.issue_date.isoformat(),
        *(str(counts.get(name, 0)) for name in ("pending", "sending", "sent", "failed", "skipped")),
    )
    console.print(table)
    for worker, count, lease in report.in_flight:
        console.print(f"In flight: {count} claimed by {worker} until {lease:%H:%M:%S} UTC")
    next_due = report.next_due
    if next_due is not None and counts.get("pending", 0):
        overdue = report.queue_ok and not report.workers and next_due.timestamp() <= time.time()
        late = ": due, and no worker is alive to send it" if overdue else ""
        console.print(f"Next retry or take-over: {next_due:%Y-%m-%d %H:%M:%S} UTC{late}")
    for email, state, detail in report.failed:  # failed for good, or pending a retry
        console.print(f"{state:>8}  {email}  {detail}")
    _exit_unless(report.queue_ok)


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


def _print_queue_and_workers(report: JobReport) -> None:
    """Print the queue's depth and the live workers, or why they cannot be seen."""
    if not report.queue_ok:
        console.print(f"Queue: {report.queue_problem}: tasks and workers cannot be seen.")
        return
    depth, workers = report.depth, report.workers
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
    if report.idle_warning:
        console.print(report.idle_warning)


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
