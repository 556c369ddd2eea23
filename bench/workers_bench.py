"""Two real `newsletter worker` processes on PostgreSQL + Redis send the daily digest to N readers.

    python bench/workers_bench.py --n 100000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/11

The data is send_bench's (N synthetic readers over 20 topics and 3 languages, about 300
segments, the day's papers fetched and stored translated), written to a fresh schema of the
PostgreSQL database. Two `newsletter worker` processes (`--threads` threads each, one by
default; the second with `--no-periodic`, as the README says to run them) are started on the
Redis database given, which must be one nothing else uses (it is emptied), with Postfix's
smtp-sink as their relay.
Then the daily job's second step, `daily_digest` (build the digest: translations, one delivery
row per reader; then its delivery), is queued for today, as `daily_job` queues it once the
fetch is done, and timed until every row is `sent`:

- `wall_s`, `msgs_per_s`: from queuing to the last row recorded sent;
- `smtp_source_msgs_per_s`: Postfix's smtp-source with `-d` (one connection reused, as each
  worker thread does) into the same sink, messages of the messages' average size (checked
  against them) over as many connections as the workers have threads, run just before the
  workers' send and just after it (`smtp_source_before_after`; the machine's load changes
  meanwhile), the mean: the line rate; `ratio_to_smtp_source` is the one over the other;
- `build_s`: from queuing until the last delivery row was written (the digest built, then
  its readers given their rows, committed a chunk at a time, each chunk's delivery queued at
  once); `first_sent_s`: until the first row was recorded sent (how long the other worker
  waited);
- `build_task_s`: the seconds each worker spent in `daily_digest` (from Huey's "executed in"
  lines), and `sent`: the messages each sent (from each `deliver` task's log line);
- `worker_cpu_ms_per_msg`: the workers' CPU time (user and system, build included) per
  message; `peak_rss_mb`: the largest peak RSS of one worker.

Every row must end `sent` and the send journal empty, or the exit status is 1.
The last line printed is one JSON object with the figures (see the README's "Performance").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import redis  # noqa: E402
import send_bench as data  # noqa: E402
from sqlalchemy import exists, func, select  # noqa: E402

from newsletter import db  # noqa: E402
from newsletter.config import get_settings  # noqa: E402
from newsletter.db import session_scope  # noqa: E402
from newsletter.delivery.messages import MessageBuilder  # noqa: E402
from newsletter.models import UNSENT, Delivery  # noqa: E402
from newsletter.store import claimed_rows  # noqa: E402

WORKERS = 2
BUILD_TASKS = ("daily_digest", "serve_part")
EXECUTED = re.compile(
    r"newsletter\.tasks\.(\w+): [0-9a-f-]+(?: \d+ retries)? executed in ([0-9.]+)s"
)
DELIVERED = re.compile(r"deliver digest \d+: .*'sent': (\d+)")


def worker_command() -> list[str]:
    script = Path(sys.executable).with_name("newsletter")
    return [str(script), "worker"] if script.is_file() else [sys.executable, "-m", "newsletter"]


def start_workers(folder: Path, threads: int) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for number in range(WORKERS):
        log = folder / f"worker{number}.log"
        extra = ["--workers", str(threads)]
        extra += [] if number == 0 else ["--no-periodic"]  # the schedule on one worker only
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*worker_command(), *extra], stdout=output, stderr=subprocess.STDOUT
            )
        workers.append((process, log))
    deadline = time.monotonic() + 60
    for process, log in workers:
        while "Huey consumer started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
    return workers


def cpu_seconds(process: subprocess.Popen) -> float:
    """The CPU time (user and system) a running process has used so far."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_workers(workers: list[tuple[subprocess.Popen, Path]]) -> None:
    for process, _log in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Huey's graceful stop
    for process, _log in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_figures(log: Path) -> dict:
    """What one worker did, from its log: seconds in the build's tasks, messages sent."""
    text = log.read_text(errors="replace")
    seconds: dict[str, float] = defaultdict(float)
    for name, duration in EXECUTED.findall(text):
        seconds[name] += float(duration)
    return {
        "build_task_s": round(sum(seconds[name] for name in BUILD_TASKS), 1),
        "deliver_task_s": round(seconds["deliver"], 1),
        "sent": sum(int(sent) for sent in DELIVERED.findall(text)),
        "errors": text.count(" ERROR ") + text.count("Traceback"),
    }


def states_of(
    settings, digest_id: int | None, *, counted: bool = False
) -> tuple[int | None, dict[str, int]]:
    """The digest's rows by state: only once none is left to send (or when `counted`),
    counted then (a count of 100,000 rows costs PostgreSQL some 60 ms of CPU, which every poll
    would take from the workers on a 2-core machine; whether one row is still unsent, a few
    index entries)."""
    with session_scope(settings) as session:
        if digest_id is None:
            digest_id = session.scalar(select(func.max(Delivery.digest_id)))
            if digest_id is None:
                return None, {}
        mine = Delivery.digest_id == digest_id
        unsent = exists().where(mine, Delivery.status.in_(UNSENT))
        if not counted and session.scalar(select(unsent)):
            return digest_id, {}
        counts = session.execute(
            select(Delivery.status, func.count()).where(mine).group_by(Delivery.status)
        ).all()
    return digest_id, {status.value: count for status, count in counts}


def timestamps(settings, digest_id: int) -> tuple[datetime, datetime, datetime]:
    """When the last row was written, the first recorded sent, the last recorded sent."""
    with session_scope(settings) as session:
        return session.execute(
            select(
                func.max(Delivery.created_at),
                func.min(Delivery.sent_at),
                func.max(Delivery.sent_at),
            ).where(Delivery.digest_id == digest_id)
        ).one()


def average_size(settings, digest_id: int) -> int:
    """The average size of the messages, from every 100th row built again as the workers did."""
    builder = MessageBuilder(settings, digest_id)
    with session_scope(settings) as session:
        ids = session.scalars(
            select(Delivery.id).where(
                Delivery.digest_id == digest_id, Delivery.id % data.SAMPLE_EVERY == 0
            )
        ).all()
        rows = claimed_rows(session, list(ids))
        builder.prepare(session, rows)
    sizes = [len(builder.message(row).data) for row in rows]
    return round(sum(sizes) / max(1, len(sizes)))


def run_benchmark(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    folder = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    port = data.free_port()
    problems: list[str] = []
    try:
        with data.database(args.database_url, folder) as url, data.smtp_sink(port):
            os.environ.update(
                NEWSLETTER_DATABASE_URL=url,
                NEWSLETTER_REDIS_URL=args.redis_url,
                NEWSLETTER_VAR_DIR=str(folder / "var"),
                NEWSLETTER_SECRET_KEY=data.SECRET,
                NEWSLETTER_BASE_URL="https://digest.example.org",
                NEWSLETTER_FROM="arXiv Digest <digest@example.org>",
                NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=never",
                NEWSLETTER_HF_CODE_LINKS="false",
                NEWSLETTER_TRANSLATOR="libretranslate",  # all stored: never asked
                NEWSLETTER_TRANSLATOR_URL="http://127.0.0.1:9",
                NEWSLETTER_LOG_LEVEL="INFO",
                NEWSLETTER_LOG_FORMAT="text",
            )
            for name in ("NEWSLETTER_SEND_RATE", "NEWSLETTER_DKIM_KEY_FILE"):
                os.environ.pop(name, None)
            with redis.Redis.from_url(args.redis_url) as client:
                client.flushdb()  # the queue and the send journal of an earlier run
            get_settings.cache_clear()
            settings = get_settings()
            db.upgrade(settings)
            started = time.perf_counter()
            data.populate(settings, args.n, random.Random(args.seed))
            populated = time.perf_counter() - started
            size = args.message_bytes  # smtp-source's size: send_bench's messages' (checked after)
            connections = WORKERS * args.threads
            source_messages = min(args.n, data.SOURCE_MAX_MESSAGES)
            source_rates = [smtp_source_rate(port, connections, source_messages, size, deadline)]
            workers = start_workers(folder, args.threads)
            try:
                from newsletter.worker import tasks  # on the Redis queue set above

                issue_date = settings.today().isoformat()
                queued_at = datetime.now(UTC)
                started = time.perf_counter()
                tasks.daily_digest(issue_date)  # what daily_job queues once it has fetched
                digest_id, states = None, {}
                while states.get("sent", 0) + states.get("failed", 0) < args.n:
                    if time.monotonic() > deadline:
                        _digest, states = states_of(settings, digest_id, counted=True)
                        raise SystemExit(f"out of time (--timeout): {states}")
                    if any(process.poll() is not None for process, _log in workers):
                        raise SystemExit("a worker exited during the send")
                    time.sleep(0.5)
                    digest_id, states = states_of(settings, digest_id)
                waited = time.perf_counter() - started
                cpu = [round(cpu_seconds(process), 1) for process, _log in workers]
            finally:
                stop_workers(workers)
            written, first_sent, last_sent = timestamps(settings, digest_id)
            with redis.Redis.from_url(args.redis_url) as client:
                journal_left = sum(client.hlen(key) for key in client.keys("*send-journal*"))
            built_size = average_size(settings, digest_id)
            if abs(built_size - size) > size / 20:
                problems.append(f"messages of {built_size} bytes, smtp-source's of {size}")
            source_rates.append(
                smtp_source_rate(port, connections, source_messages, size, deadline)
            )
            source_rate = sum(source_rates) / len(source_rates)
            figures = [worker_figures(log) for _process, log in workers]
            shutil.copytree(folder, args.logs, dirs_exist_ok=True, ignore=_not_logs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    wall = (last_sent - queued_at).total_seconds()
    if states != {"sent": args.n}:
        problems.append(f"deliveries {states}, for {args.n} readers")
    if journal_left:
        problems.append(f"the send journal still holds {journal_left} entries")
    if sum(worker["sent"] for worker in figures) != args.n:
        problems.append(f"the workers say they sent {[w['sent'] for w in figures]}")
    if any(worker["errors"] for worker in figures):
        problems.append(f"errors in the workers' logs (kept under {args.logs})")
    rate = args.n / wall
    print(
        f"data: {args.n} readers written in {populated:.1f} s; messages of {size / 1000:.0f} kB"
        f" on average\n"
        f"{WORKERS} workers: every row sent {wall:.1f} s after queuing (seen by polling after"
        f" {waited:.1f} s); rows all written after {(written - queued_at).total_seconds():.1f} s,"
        f" first sent after {(first_sent - queued_at).total_seconds():.1f} s\n"
        f"each worker: {figures}\n"
        f"worker CPU: {cpu} s, {sum(cpu) / args.n * 1000:.2f} ms a message\n"
        f"smtp-source -d: {connections} connections, {source_messages} messages of {size} bytes"
        f" at {source_rates[0]:.0f}/s before the workers' send and {source_rates[1]:.0f}/s"
        f" after; worker logs under {args.logs}"
    )
    for problem in problems:
        print(f"  PROBLEM {problem}")
    result = {
        "n": args.n,
        "workers": WORKERS,
        "threads": args.threads,
        "wall_s": round(wall, 1),
        "msgs_per_s": round(rate),
        "smtp_source_msgs_per_s": round(source_rate),
        "smtp_source_before_after": [round(rate) for rate in source_rates],
        "ratio_to_smtp_source": round(rate / source_rate, 2),
        "build_s": round((written - queued_at).total_seconds(), 1),
        "first_sent_s": round((first_sent - queued_at).total_seconds(), 1),
        "build_task_s": [worker["build_task_s"] for worker in figures],
        "sent": [worker["sent"] for worker in figures],
        "worker_cpu_ms_per_msg": round(sum(cpu) / args.n * 1000, 2),
        "peak_rss_mb": round(data.peak_rss_mb(resource.RUSAGE_CHILDREN)),
        "message_bytes": size,
    }
    print(json.dumps(result), flush=True)
    return 1 if problems else 0


def smtp_source_rate(port: int, connections: int, messages: int, size: int, deadline: float):
    """smtp-source's rate with -d (a connection reused, as each worker thread reuses its own)."""
    command = [
        str(data.postfix_bin() / "smtp-source"),
        *("-d", "-s", str(connections), "-m", str(messages), "-l", str(size)),
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, timeout=max(1.0, deadline - time.monotonic()))
    return messages / (time.perf_counter() - started)


def _not_logs(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if not name.endswith(".log")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="readers (default 10000)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds in all (1800)")
    options = {
        "--database-url": ("postgresql+psycopg://postgres@127.0.0.1:5432/test",
                           "PostgreSQL database in which a fresh schema is made (and dropped)"),
        "--redis-url": ("redis://127.0.0.1:6379/11",
                        "a Redis database nothing else uses: it is emptied (default .../11)"),
        "--logs": (Path(tempfile.gettempdir()) / "workers-bench-logs",
                   "the workers' logs are kept here"),
    }  # fmt: skip
    for name, (default, explained) in options.items():
        parser.add_argument(name, type=type(default), default=default, help=explained)
    parser.add_argument("--seed", type=int, default=7, help="of the synthetic data (7)")
    parser.add_argument("--threads", type=int, default=1, help="threads a worker (1)")
    parser.add_argument(
        "--message-bytes", type=int, default=124_800, help="smtp-source's size (124800)"
    )
    args = parser.parse_args()
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
