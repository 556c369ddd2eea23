"""`newsletter run` end to end, through the CLI in a process of its own, for N readers.

    python bench/run_bench.py --n 100000

A fresh SQLite database (in a temporary folder) gets topics whose arXiv queries a local arXiv
stand-in (tests/arxiv_server.py) answers with real arXiv responses, read from
../shared/fixtures/arxiv where they are kept (never copied), and N readers over those topics
(written straight into the database, as send_bench does: importing is not what is measured).
Then `newsletter run --inline` runs as a user would run it, in one process: it fetches,
builds and sends every message into Postfix's smtp-sink. Timed: the whole command, from its
start (imports included) to its exit; its peak RSS is its own (`wait4`).

In the same run, Postfix's smtp-source sends messages of the same average size into the same
sink over as many connections as `newsletter run` uses (one), reusing them (`-d`, as the
project does): the line rate to compare with, `ratio_to_smtp_source`.

Checked: the command exits with 0 and says "N sent, 0 failed", and every delivery row is
`sent`; otherwise the exit status is 1. (bench/send_bench.py checks 1% of the messages'
contents.)

The last line printed is one JSON object with the figures (see the README's "Performance").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from send_bench import (  # noqa: E402
    SAMPLE_EVERY,
    SECRET,
    check_message,
    free_port,
    postfix_bin,
    print_problems,
    smtp_sink,
)
from sqlalchemy import insert, select  # noqa: E402

from newsletter import db, store  # noqa: E402
from newsletter.config import get_settings  # noqa: E402
from newsletter.daily.fetch import topic_query  # noqa: E402
from newsletter.db import session_scope  # noqa: E402
from newsletter.delivery.messages import MessageBuilder  # noqa: E402
from newsletter.intake.subscribers import email_key  # noqa: E402
from newsletter.intake.topics import TopicSpec  # noqa: E402
from newsletter.models import Delivery, Subscriber, SubscriberTopic, new_public_id  # noqa: E402
from tests.arxiv_server import SHARED_FIXTURES, ArxivServer, Reply  # noqa: E402

FEEDS = {
    "Testing": ["current/all-testing_start0_10.xml", "current/all-testing_start10_10.xml",
                "current/all-testing_start20_10.xml"],
    "Agents": ["current/cs-ai-lg-cl_2026-05-12_25.xml"],
    "Language Models": ["current/cs-ai-lg-cl_2026-07-30_25.xml"],
    "Test Suites": ["current/all-testing_start0_100.xml"],
}  # fmt: skip
"""Each topic's answer from arXiv: real responses, page after page (the keyword is the topic's
name). Each topic takes its newest PAPERS_PER_TOPIC."""
PAPERS_PER_TOPIC = 25
SOURCE_MAX_MESSAGES = 30_000  # smtp-source's rate is steady well before this many
TEXT_SHARE = 0.05  # readers who take the text part alone


def write_readers(settings, n: int, rng: random.Random) -> None:
    """The topics and N readers, each following one to three of them (a long tail of sets)."""
    with session_scope(settings) as session:
        topic_ids = [
            store.add_topic(session, TopicSpec(name, f"Papers on {name}.", (name,))).id
            for name in FEEDS
        ]
    sets = [
        sorted(rng.sample(topic_ids, rng.choice([1, 1, 2, 2, 3]))) for _ in range(3 * len(FEEDS))
    ]
    weights = [1 / (rank + 1) for rank in range(len(sets))]
    for start in range(0, n, 5_000):
        count = min(5_000, n - start)
        chosen = rng.choices(sets, weights, k=count)
        with session_scope(settings) as session:
            ids = session.scalars(
                insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True),
                [
                    {
                        "email": f"reader{start + i:07d}@example.org",
                        "email_key": email_key(f"reader{start + i:07d}@example.org"),
                        "public_id": new_public_id(),
                        "language": "en",
                        "format": "text" if rng.random() < TEXT_SHARE else "html",
                    }
                    for i in range(count)
                ],
            ).all()
            session.execute(
                insert(SubscriberTopic),
                [
                    {"subscriber_id": sid, "topic_id": tid}
                    for sid, topics in zip(ids, chosen, strict=True)
                    for tid in topics
                ],
            )


def route_feeds(server: ArxivServer, settings) -> None:
    """Each topic's query answered with its feed, page after page."""
    with session_scope(settings) as session:
        topics = store.list_topics(session)
    for topic in topics:
        query, start = topic_query(topic), 0
        for page in FEEDS[topic.name]:
            server.route(Reply.file(SHARED_FIXTURES / page), search_query=query, start=start)
            start += page_entries(SHARED_FIXTURES / page)


def page_entries(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("<entry>")


def run_newsletter(env: dict[str, str], timeout: float) -> tuple[float, float, float, str, int]:
    """`newsletter run --inline` in a process of its own: its wall time, its CPU time (user and
    system), its peak RSS (MB), its output and its exit status."""
    started = time.perf_counter()
    command = [str(Path(sys.executable).with_name("newsletter")), "run", "--inline"]
    if os.environ.get("RUN_BENCH_PROFILE"):  # cProfile the run into that file
        command = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            os.environ["RUN_BENCH_PROFILE"],
            *command,
        ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    output = b""
    os.set_blocking(process.stdout.fileno(), False)
    while True:
        chunk = process.stdout.read()
        if chunk:
            output += chunk
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("newsletter run ran out of time (--timeout)")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    output += process.stdout.read() or b""
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, output.decode(errors="replace"), process.returncode


def smtp_source_rate(port: int, messages: int, size: int) -> float:
    """smtp-source over one connection, reused for every message (`-d`)."""
    command = [
        str(postfix_bin() / "smtp-source"),
        *("-d", "-s", "1", "-m", str(messages), "-l", str(size)),
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return messages / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="readers (default 10000)")
    parser.add_argument("--seed", type=int, default=7, help="of the readers' topics (7)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the run (1800)")
    parser.add_argument(
        "--no-pipelining", action="store_true", help="NEWSLETTER_SMTP_PIPELINING=false"
    )
    args = parser.parse_args()
    if not (SHARED_FIXTURES / FEEDS["Testing"][0]).is_file():
        raise SystemExit(f"the real arXiv responses are missing: {SHARED_FIXTURES}")
    folder = Path(tempfile.mkdtemp(prefix="run-bench-"))
    port = free_port()
    try:
        with ArxivServer() as arxiv, smtp_sink(port):
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
                "NEWSLETTER_DATABASE_URL": f"sqlite:///{folder / 'run.db'}",
                "NEWSLETTER_VAR_DIR": str(folder / "var"),
                "NEWSLETTER_SECRET_KEY": SECRET,
                "NEWSLETTER_BASE_URL": "https://digest.example.org",
                "NEWSLETTER_FROM": "arXiv Digest <digest@example.org>",
                "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=never",
                "NEWSLETTER_SMTP_PIPELINING": "false" if args.no_pipelining else "true",
                "NEWSLETTER_ARXIV_API_URL": arxiv.url,
                "NEWSLETTER_ARXIV_DELAY": "0",
                "NEWSLETTER_ARXIV_PAGE_SIZE": "10",
                "NEWSLETTER_FETCH_MAX_PER_TOPIC": str(PAPERS_PER_TOPIC),
                "NEWSLETTER_HF_CODE_LINKS": "false",
            }
            profile = os.environ.get("RUN_BENCH_PROFILE")
            os.environ.clear()
            os.environ.update(env)
            if profile:
                os.environ["RUN_BENCH_PROFILE"] = profile
            get_settings.cache_clear()
            settings = get_settings()
            db.upgrade(settings)
            write_readers(settings, args.n, random.Random(args.seed))
            route_feeds(arxiv, settings)
            seconds, cpu, peak, output, status = run_newsletter(env, args.timeout)
            with session_scope(settings) as session:
                states: dict[str, int] = {}
                for state in session.scalars(select(Delivery.status)):
                    states[state.value] = states.get(state.value, 0) + 1
                digests = len(store.list_digests(session))
            checked, size, problems = sampled_messages(settings)
            messages = min(args.n, SOURCE_MAX_MESSAGES)
            source_rate = smtp_source_rate(port, messages, size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if status != 0 or f"{args.n} sent, 0 failed" not in output:
        problems.append(f"newsletter run exited with {status}:\n{output[-3000:]}")
    if states != {"sent": args.n}:
        problems.append(f"deliveries {states} for {args.n} readers")
    rate = args.n / seconds
    print(
        f"newsletter run --inline: {args.n} readers, {len(FEEDS)} topics, {digests} digest(s),"
        f" messages of about {size / 1000:.0f} kB, in {seconds:.1f} s ({rate:.0f}/s),"
        f" {cpu:.1f} s of CPU, peak RSS {peak:.0f} MB\n"
        f"smtp-source -d: 1 connection, {messages} messages of {size} bytes at"
        f" {source_rate:.0f}/s\n"
        f"sample: {checked} messages made again and checked, {len(problems)} problems"
    )
    print_problems(problems)
    figures = {
        "n": args.n,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "msgs_per_s": round(rate),
        "smtp_source_d_msgs_per_s": round(source_rate),
        "ratio_to_smtp_source": round(rate / source_rate, 2),
        "peak_rss_mb": round(peak),
        "message_bytes": size,
        "pipelining": not args.no_pipelining,
        "connections": 1,
    }
    print(json.dumps(figures), flush=True)
    return 1 if problems else 0


def sampled_messages(settings) -> tuple[int, int, list[str]]:
    """1% of the readers' messages (delivery ids divisible by 100), made again as the run made
    them (`MessageBuilder`), and checked as send_bench checks what it sent (valid MIME, the
    right reader, their own unsubscribe link, token and mailto): their number, their average
    size (what smtp-source sends), and the problems found."""
    problems: list[str] = []
    sizes: list[int] = []
    secret = settings.secret()
    with session_scope(settings) as session:
        sample = session.execute(
            select(Delivery.id, Delivery.digest_id, Delivery.message_id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .add_columns(Subscriber.public_id, Subscriber.format)
            .where(Delivery.id % SAMPLE_EVERY == 0)
        ).all()
        builders: dict[int, MessageBuilder] = {}
        for delivery_id, digest_id, message_id, email, public_id, mail_format in sample:
            builder = builders.setdefault(digest_id, MessageBuilder(settings, digest_id))
            (row,) = store.claimed_rows(session, [delivery_id])
            builder.prepare(session, [row])
            data = builder.message(row).data
            sizes.append(len(data))
            if mail_format.value == "text":
                continue  # send_bench's check expects both parts
            try:
                found = check_message(data, email, secret, (message_id, email, public_id))
            except Exception as error:  # noqa: BLE001 (a parser's complaint is the finding)
                found = [f"{type(error).__name__}: {error}"]
            problems += [f"delivery {delivery_id}: {problem}" for problem in found]
    return len(sizes), round(sum(sizes) / max(1, len(sizes))), problems


if __name__ == "__main__":
    sys.exit(main())
