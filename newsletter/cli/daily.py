"""The daily job from the command line: fetch, send, run, preview."""

from __future__ import annotations

import webbrowser
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter import store
from newsletter.cli.common import (
    console,
    day_option,
    err_console,
    open_session,
    progress_bar,
    ready_settings,
)
from newsletter.cli.webhooks import post_pending
from newsletter.daily import code_check
from newsletter.daily import fetch as daily_fetch
from newsletter.daily import send as daily_send
from newsletter.daily.serve import NextDigest, next_digest
from newsletter.errors import NothingToDo
from newsletter.intake.rhythm import SendClock
from newsletter.models import utcnow
from newsletter.render import preview as previews
from newsletter.schedules import zone_named

Day = Annotated[
    datetime | None,
    day_option(
        "--date", help="The digest's date, YYYY-MM-DD (default: today in NEWSLETTER_TIMEZONE)."
    ),
]


def fetch(
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeat).")
    ] = None,
) -> None:
    """Fetch the new arXiv papers of every topic, and ask Hugging Face for their code.

    Exits with 1 when arXiv failed for any topic (the others are fetched all the same).
    Example: newsletter fetch --topic NeRF
    """
    settings = ready_settings()
    report = daily_fetch.fetch(settings, topic or ())
    _print_fetch(report)
    _check_code_links(settings)
    if not report.ok:
        raise typer.Exit(code=1)


def _check_code_links(settings) -> None:
    """Hugging Face's answers are a bonus: failures are shown, never a reason to exit with 1."""
    report = code_check.check_code_links(settings)
    if report.summary():
        console.print(report.summary())
    if report.stopped:
        err_console.print(f"Warning: stopped asking Hugging Face this run: {report.stopped}")


def _print_fetch(report: daily_fetch.FetchReport) -> None:
    table = Table("Topic", "Fetched", "New papers", "Newly matched", "Problem")
    for entry in report.topics:
        table.add_row(
            entry.topic,
            str(entry.fetched),
            str(entry.new_papers),
            str(entry.new_links),
            entry.error or "",
        )
    console.print(table)
    for entry in report.topics:
        for reason in entry.skipped:
            err_console.print(f"Warning: topic {entry.topic!r}: left out {reason}")
    for error in report.errors:
        err_console.print(f"Error: {error}")


def send(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get what; send nothing.")
    ] = False,
    day: Day = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Retry temporary failures here after their backoff, or leave them for later.",
        ),
    ] = True,
) -> None:
    """Build today's digest and send it to everyone who has not had it yet.

    A paused or interrupted send resumes where it stopped and never resends what was sent.
    Once the mail is out, the due webhooks are posted (for NEWSLETTER_WEBHOOK_SEND_BUDGET
    seconds at most; the worker or the next send posts the rest).
    Example: newsletter send --dry-run
    """
    settings = ready_settings()
    issue_date = day.date() if day is not None else None
    if dry_run:
        _print_plan(daily_send.plan(settings, issue_date))
        return
    _require_work(settings)
    report = _send_with_progress(settings, issue_date, wait)
    post_pending()  # once the mail is out: an endpoint never holds it up
    if report.failed:
        raise typer.Exit(code=1)


def _send_with_progress(
    settings, issue_date: date | None, wait: bool = True
) -> daily_send.SendReport:
    with progress_bar("Sending") as bar:
        task = bar.add_task("send", total=None)
        report = daily_send.send(
            settings,
            issue_date,
            progress=lambda n: bar.advance(task, n),
            on_total=lambda total: bar.update(task, total=total),
            wait_for_retries=wait,
        )
    _print_send(report)
    return report


def _print_plan(report: daily_send.SendReport) -> None:
    table = Table("To", "Lang", "Topics", "Papers", "Delivery")
    for planned in report.planned:
        table.add_row(
            planned.email,
            planned.language,
            ", ".join(planned.topics),
            str(planned.papers),
            planned.status,
        )
    console.print(table)
    waiting = sum(1 for p in report.planned if p.status in ("new", "pending", "sending"))
    console.print(f"Digest {report.issue_date}: {waiting} message(s) would be sent (dry run).")


def _print_send(report: daily_send.SendReport) -> None:
    if report.translation.summary():
        console.print(report.translation.summary())
    journaled = f", {report.recovered} found sent in the send journal" if report.recovered else ""
    console.print(
        f"Digest {report.issue_date}: {report.sent} sent, {report.failed} failed,"
        f" {report.unfinished} to retry later, {report.already_sent} sent before{journaled}."
    )
    if report.deferred:
        console.print(f"{report.deferred} temporary failure(s) were met and retried or deferred.")
    if report.skipped or report.bounced:
        console.print(
            f"{report.skipped} skipped (left the list meanwhile), {report.bounced} marked bounced."
        )
    for failure in report.failures:
        err_console.print(f"Failed: {failure}")


def run(
    inline: Annotated[
        bool, typer.Option("--inline", help="Run it in this process even when workers exist.")
    ] = False,
) -> None:
    """Run the whole daily job now: fetch, build, send.

    With NEWSLETTER_REDIS_URL set, the job is handed to the workers (see `newsletter status`);
    otherwise, or with --inline, it runs here. Exits with 1 when arXiv failed for a topic or a
    message failed (everything else still goes), or when there is nothing to do: no topic, or
    nobody following one (it says what to add).
    Example: newsletter run --inline
    """
    settings = ready_settings()
    _require_work(settings)
    if settings.redis_url is not None and not inline:
        _hand_to_workers(settings)
        return
    fetched = daily_fetch.fetch(settings)
    _print_fetch(fetched)
    _check_code_links(settings)
    sent = _send_with_progress(settings, None)
    post_pending()
    if not fetched.ok or sent.failed:
        raise typer.Exit(code=1)


def _require_work(settings) -> None:
    """Stop, saying what to do next, when there is nothing to fetch or nobody to send to."""
    reason = daily_send.nothing_to_do(settings)
    if reason is not None:
        raise NothingToDo(f"nothing to do: {reason}.")


def _hand_to_workers(settings) -> None:
    """Queue the daily job and return at once, warning when no worker is alive to take it
    (it waits in the queue for one)."""
    import redis

    from newsletter.errors import QueueError
    from newsletter.worker import heartbeat
    from newsletter.worker.tasks import daily_job, queue_depth

    try:
        daily_job()
    except redis.RedisError as error:
        raise QueueError(f"the daily job was not queued: {error}") from error
    waiting, workers = queue_depth()["pending"], heartbeat.live_workers(settings)
    console.print("The daily job is queued for the workers; follow it with `newsletter status`.")
    warning = heartbeat.idle_queue_warning(waiting, workers)
    if warning:
        err_console.print(f"Warning: {warning}")


def _when(settings, upcoming: NextDigest) -> str:
    """ "Goes out weekly on Monday at 07:00 Asia/Shanghai: next on 2026-12-07 07:00 (CST)"."""
    rhythm = SendClock.of(settings).describe(upcoming.schedule)
    if upcoming.due is None:
        return f"Goes out {rhythm}: with the next daily digest."
    zone = zone_named(upcoming.schedule.zone or settings.timezone)
    local = upcoming.due.astimezone(zone)
    return f"Goes out {rhythm}: next on {local:%Y-%m-%d %H:%M} ({local:%Z})."


def preview(
    subscriber: Annotated[
        str | None, typer.Option("--subscriber", "-s", help="Preview this subscriber's email.")
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Or preview these topics (repeat).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the HTML.")
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open it in the default browser.")] = False,
) -> None:
    """Write a subscriber's next email as it will be sent (or a topic set's digest), and open it
    if asked.

    A subscriber's shows the papers of their next window (since their previous digest, a
    week's for a weekly reader), in their language, order and format: the text part for a
    reader who takes text only. It says when it goes out.

    Example: newsletter preview --subscriber ada@example.org --open
    """
    settings = ready_settings()
    window, due, text_only = None, None, False
    with open_session() as session:
        if subscriber:
            reader = store.get_subscriber(session, subscriber)
            upcoming = next_digest(session, settings, reader, utcnow())
            window, text_only = (upcoming.start, upcoming.spans_days), reader.format == "text"
            due = _when(settings, upcoming)
        body, label = previews.preview_body(
            session, settings, subscriber, topic or (), window=window
        )
    suffix, document = (".txt", body.text) if text_only else (".html", body.html)
    path = output or settings.var_dir / "preview" / f"{label}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    console.print(f"Wrote {path}")
    if due is not None:
        console.print(f"Subject: {body.subject}")
        console.print(due)
    if open_:
        webbrowser.open(path.resolve().as_uri())
