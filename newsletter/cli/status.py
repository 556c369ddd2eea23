"""`newsletter status`: the queue, the latest digest's deliveries, and what went wrong."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import console, session


def status(
    failures: Annotated[int, typer.Option(help="How many failures to list.")] = 20,
) -> None:
    """Show the queue depth, the latest digest's deliveries by state, and failures with reasons.

    Example: newsletter status --failures 50
    """
    from newsletter.tasks import queue_depth

    depth = queue_depth()
    console.print(f"Queue: {depth['pending']} task(s) waiting, {depth['scheduled']} scheduled.")
    with session() as unit:
        digest = next(iter(store.list_digests(unit)), None)
        if digest is None:
            console.print("No digest yet.")
            return
        counts = store.delivery_counts(unit, digest.id)
        in_flight = store.claims_in_flight(unit, digest.id)
        failed = store.failed_deliveries(unit, digest.id, failures)
        next_due = store.next_due_at(unit, digest.id)
    table = Table("Digest", "pending", "sending", "sent", "failed", "skipped")
    table.add_row(
        digest.issue_date.isoformat(),
        *(str(counts.get(name, 0)) for name in ("pending", "sending", "sent", "failed", "skipped")),
    )
    console.print(table)
    for worker, count, lease in in_flight:
        console.print(f"In flight: {count} claimed by {worker} until {lease:%H:%M:%S} UTC")
    if next_due is not None and counts.get("pending", 0):
        console.print(f"Next retry or take-over: {next_due:%Y-%m-%d %H:%M:%S} UTC")
    for email, state, detail in failed:
        console.print(f"{state:>8}  {email}  {detail}")
