"""Build and send one digest to N synthetic subscribers through the real code path.

    python bench/send_bench.py --n 100000
    python bench/send_bench.py --n 20000 --database-url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/send_bench.py --n 20000 --redis-url redis://127.0.0.1:6379/13

N subscribers over 20 topics and 3 languages (en, zh, de), their topic sets drawn from a pool
of 100 sets with a long tail (a few hundred segments), and 3-25 new papers a topic with
abstracts of realistic length and make-up, each stored translated into zh and de (so those
segments show the translation with the original below, as translated digests do), are
written to a fresh database (SQLite in a temporary folder, or
a schema of its own in the PostgreSQL database given, dropped afterwards). Then:

1. prepare: `daily_send.prepare` gives every subscriber a delivery row (not timed in the rates);
2. build: one process makes every message as the Deliverer does (segment rendering, then per
   message the signed links and the bytes by substitution, dot-stuffed as DATA sends them:
   everything done before the socket), without SMTP or claims;
3. send: `--processes` processes each run `deliver_all` (claims, render, personalise, one SMTP
   connection, grouped recording, each accepted message noted in the send journal: a file per
   process under the var folder, or with `--redis-url` a hash in that Redis database, which
   must be one nothing else uses) over the same digest into Postfix's smtp-sink, and the
   journal must be empty once they are done;
4. smtp-source sends messages of the same average size over as many connections into the
   same sink, each connection reused (`-d`, as the senders reuse theirs): the line rate to
   compare with;
5. 1% of the messages handed to the SMTP server (delivery ids divisible by 100) are checked:
   valid MIME under the strict policy, addressed (envelope and To) to their row's subscriber,
   with the row's Message-ID, and with that subscriber's own unsubscribe link, whose token
   `read_token` verifies to their public id and which the List-Unsubscribe mailto: carries.
   Any failure makes the exit status 1.

The last line printed is one JSON object with the figures (see the README's "Performance").
"""

from __future__ import annotations

import argparse
import email
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from sqlalchemy import event, insert, select, update  # noqa: E402

from newsletter import db, store  # noqa: E402
from newsletter.config import get_settings  # noqa: E402
from newsletter.daily import fetch, serve  # noqa: E402
from newsletter.daily import send as daily_send  # noqa: E402
from newsletter.db import session_scope  # noqa: E402
from newsletter.delivery import messages  # noqa: E402
from newsletter.delivery.deliverer import DeliveryReport, deliver_all  # noqa: E402
from newsletter.delivery.journal import FOLDER, RedisJournal  # noqa: E402
from newsletter.delivery.messages import MessageBuilder  # noqa: E402
from newsletter.delivery.outgoing import Outgoing  # noqa: E402
from newsletter.delivery.transports import transport_from_settings  # noqa: E402
from newsletter.intake.rhythm import SendClock  # noqa: E402
from newsletter.intake.subscribers import email_key  # noqa: E402
from newsletter.intake.topics import TopicSpec  # noqa: E402
from newsletter.models import (  # noqa: E402
    Delivery,
    Paper,
    Subscriber,
    SubscriberTopic,
    Translation,
    new_public_id,
)
from newsletter.schedules import Schedule  # noqa: E402
from newsletter.sources.papers import FetchedPaper  # noqa: E402
from newsletter.tokens import UNSUBSCRIBE, read_token  # noqa: E402

POSTFIX_TOOLS = REPO.parent / "shared" / "tools" / "postfix-tools"
SAMPLE_EVERY = 100  # delivery ids divisible by this are checked: 1%
SOURCE_MAX_MESSAGES = 30_000  # smtp-source's rate is steady well before this many
SECRET = "bench-secret-" + "k" * 40

TOPICS = [
    "MLLM", "Diffusion", "SLAM", "SFM", "Visual Localization", "Keypoint Detection",
    "Image Matching", "NeRF", "Gaussian Splatting", "Depth Estimation", "Point Clouds",
    "Object Detection", "Segmentation", "Video Understanding", "Embodied AI",
    "Reinforcement Learning", "LLM Reasoning", "Speech", "Graph Learning", "Efficient Inference",
]  # fmt: skip
LANGUAGES = {"en": 0.7, "zh": 0.2, "de": 0.1}
TOPIC_SETS = 100
SET_SIZES = {1: 0.3, 2: 0.3, 3: 0.2, 4: 0.12, 5: 0.08}


# ---------------------------------------------------------------------------- synthetic data

WORDS = {
    "Adj": "efficient robust scalable unified lightweight generalizable self-supervised "
    "training-free zero-shot hierarchical adaptive sparse".split(),
    "Approach": "framework architecture pipeline method paradigm model formulation".split(),
    "Task": "multi-view reconstruction, dense correspondence, open-vocabulary detection, "
    "long-horizon planning, text-to-image generation, monocular depth estimation, visual "
    "question answering, loop closure, camera relocalization, novel view synthesis".split(", "),
    "Thing": "transformer backbones, diffusion priors, keypoint descriptors, scene graphs, "
    "token representations, attention maps, point features, latent codes".split(", "),
    "Data": "ScanNet, KITTI, nuScenes, ImageNet, COCO, MegaDepth, HPatches, TUM RGB-D, "
    "EuRoC, LLaVA-Bench, MMBench, Replica".split(", "),
    "Metric": "accuracy, mAP, PSNR, ATE, recall, F1 score, success rate".split(", "),
    "Math": ["$\\mathcal{O}(n \\log n)$", "$3\\times$", "$\\alpha$", "$L^2$", "$\\ell_1$"],
}
SENTENCES = [
    "{Task} has emerged as a central problem in computer vision, yet existing methods rely on "
    "{Thing} that generalize poorly beyond their training distribution.",
    "Recent advances in {Thing} have enabled impressive progress on {Task}, but their cost "
    "grows quadratically with the input size.",
    "We propose {Name}, a {Adj} {Approach} for {Task} that couples {Thing} with {Thing}.",
    "In this paper, we introduce {Name}, which reformulates {Task} as a {Adj} matching problem "
    "over {Thing}.",
    "Our key insight is that {Thing} already encode most of the geometry needed for {Task}, "
    "so a {Adj} head suffices.",
    "Specifically, we distill {Thing} into a compact student with a {Adj} objective whose cost "
    "is {Math} in the number of tokens.",
    "We further introduce a {Adj} consistency loss weighted by {Math}, which stabilizes "
    "training without extra supervision.",
    "A lightweight adapter of only {Math} of the parameters bridges the two stages.",
    "Extensive experiments on {Data}, {Data} and {Data} show that {Name} improves {Metric} by "
    "{Number}% over the strongest baseline while running {Math} faster.",
    "On {Data}, {Name} sets a new state of the art in {Metric}, and ablations confirm that "
    "each component contributes.",
    "We also show that {Name} transfers to {Task} with no fine-tuning.",
]
OPENERS, MIDDLES, RESULTS = SENTENCES[:2], SENTENCES[2:8], SENTENCES[8:]
# What a translator makes of such an abstract: as long in bytes (Chinese: a third of the
# characters at three bytes each; German: a little longer than English), the math and the
# system's name kept, so the translated digests weigh what real ones do.
TRANSLATED = {
    "zh": (
        "我们提出了一种{Adj}的方法，用于{Task}，其复杂度为{Math}。",
        "现有方法依赖于在训练分布之外泛化能力较差的表示，而{Name}通过统一的匹配框架解决了这一问题。",
        "在多个基准上的大量实验表明，{Name}显著优于最强的基线，同时运行速度更快。",
        "我们进一步引入了一致性损失，在没有额外监督的情况下稳定了训练过程。",
    ),
    "de": (
        "Wir schlagen {Name} vor, ein {Adj} Verfahren für {Task}, dessen Aufwand {Math} beträgt.",
        "Bestehende Methoden stützen sich auf Repräsentationen, die außerhalb ihrer "
        "Trainingsverteilung schlecht verallgemeinern.",
        "Umfangreiche Experimente auf mehreren Benchmarks zeigen, dass {Name} die stärkste "
        "Vergleichsmethode deutlich übertrifft und dabei schneller läuft.",
        "Eine zusätzliche Konsistenzverlustfunktion stabilisiert das Training ohne weitere "
        "Überwachung.",
    ),
}


def sentence(template: str, rng: random.Random, name: str) -> str:
    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot == "Name":
            return name
        if slot == "Number":
            return f"{rng.uniform(1, 15):.1f}"
        return rng.choice(WORDS[slot])

    text = re.sub(r"\{(\w+)\}", fill, template)
    return text[0].upper() + text[1:]


def fake_paper(number: int, rng: random.Random, published: datetime) -> FetchedPaper:
    name = "".join(rng.choice("ABCDEFGHKLMNPRSTVXZ") for _ in range(3)) + rng.choice(
        ["-Net", "Former", "Fusion", "-SLAM", "Diff", "GS", ""]
    )
    parts = [sentence(rng.choice(OPENERS), rng, name)]
    parts += [sentence(t, rng, name) for t in rng.sample(MIDDLES, rng.randint(3, 5))]
    parts += [sentence(t, rng, name) for t in rng.sample(RESULTS, 2)]
    repo = f"https://github.com/lab{number % 97}/{name.lower().strip('-')}"
    if rng.random() < 0.3:
        parts.append(f"Code is available at {repo}.")
    arxiv_id = f"2611.{number:05d}"
    task, thing = rng.choice(WORDS["Task"]), rng.choice(WORDS["Thing"])
    words = f"{sentence('{Adj}', rng, name)} {task} with {thing}"
    return FetchedPaper(
        arxiv_id=arxiv_id,
        version=1,
        title=f"{name}: {words}",
        abstract=" ".join(parts),
        authors=tuple(f"Author{n} Surname{number % 50 + n}" for n in range(rng.randint(2, 12))),
        categories=("cs.CV", "cs.LG"),
        primary_category="cs.CV",
        published=published,
        updated=published,
        comment=rng.choice([None, None, "Accepted to CVPR 2026", f"12 pages. Code: {repo}"]),
        journal_ref=None,
        doi=None,
        abs_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        code_urls=(repo,) if rng.random() < 0.4 else (),
    )


def translated(paper: FetchedPaper, language: str, rng: random.Random) -> str:
    name = paper.title.split(":")[0]
    sentences = TRANSLATED[language]
    target = len(paper.abstract.encode())
    parts: list[str] = []
    while len(" ".join(parts).encode()) < target:
        parts.append(sentence(sentences[len(parts) % len(sentences)], rng, name))
    return ("" if language == "zh" else " ").join(parts)


def populate(settings, n: int, rng: random.Random, schedules: bool = False) -> list[int]:
    """Topics, their new papers (some shared between topics), the papers' abstracts in the
    subscribers' other languages, and N subscribers; their ids.

    With `schedules`, a week of daily digests comes first (the papers of each day, built at
    midnight UTC), so that weekly readers have a week's span to be given (see
    `spread_schedules`)."""
    with session_scope(settings) as session:
        topic_ids = [
            store.add_topic(session, TopicSpec(name, f"New papers on {name}.", (name,))).id
            for name in TOPICS
        ]
    number, papers = 0, []
    days = range(WEEK, -1, -1) if schedules else [None]
    for day in days:
        now = datetime.now(UTC) if day is None else TODAY - timedelta(days=day)
        for topic_id in topic_ids:
            own = []
            for _ in range(rng.randint(3, 25)):
                number += 1
                own.append(fake_paper(number, rng, now - timedelta(minutes=number)))
            shared = rng.sample(papers, min(len(papers), rng.randint(0, 3)))  # "Also in"
            papers += own
            fetch.save_fetched(settings, topic_id, own + shared, now=now - timedelta(minutes=10))
        if day is not None:
            daily_send.build_daily(settings, now.date(), now=now)
    with session_scope(settings) as session:
        paper_ids = dict(session.execute(select(Paper.arxiv_id, Paper.id)).all())
        session.execute(
            insert(Translation),
            [
                {
                    "paper_id": paper_ids[paper.arxiv_id],
                    "language": language,
                    "provider": "bench",
                    "abstract": translated(paper, language, rng),
                }
                for paper in papers
                for language in TRANSLATED
            ],
        )
    popularity = [1 / (rank + 1) ** 0.8 for rank in range(len(topic_ids))]
    pool = []
    while len(pool) < TOPIC_SETS:
        size = rng.choices(list(SET_SIZES), list(SET_SIZES.values()))[0]
        chosen = set()
        while len(chosen) < size:
            chosen.add(rng.choices(topic_ids, popularity)[0])
        if sorted(chosen) not in pool:
            pool.append(sorted(chosen))
    set_weights = [1 / (rank + 1) for rank in range(len(pool))]
    every = []
    for start in range(0, n, 5_000):
        count = min(5_000, n - start)
        sets = rng.choices(pool, set_weights, k=count)
        languages = rng.choices(list(LANGUAGES), list(LANGUAGES.values()), k=count)
        emails = [f"reader{start + i:07d}@example.org" for i in range(count)]
        with session_scope(settings) as session:
            ids = session.scalars(
                insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True),
                [
                    {
                        "email": address,
                        "email_key": email_key(address),
                        "public_id": new_public_id(),
                        "language": language,
                    }
                    for address, language in zip(emails, languages, strict=True)
                ],
            ).all()
            every += ids
            session.execute(
                insert(SubscriberTopic),
                [
                    {"subscriber_id": sid, "topic_id": tid}
                    for sid, topics in zip(ids, sets, strict=True)
                    for tid in topics
                ],
            )
    return every


WEEK = 7
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
"""`--schedules`: the day served, from its midnight UTC (its daily digest's build) on."""
ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Europe/Berlin", "Pacific/Auckland",
         "Asia/Shanghai"]  # fmt: skip
WEEKLY_SHARE = 0.3
"""Weekly readers, all due today (on the weekday today is at their hour): a week's span each;
one in fifty changed cadence during the week (a shorter span of its own)."""


def spread_schedules(settings, readers: list[int], rng: random.Random) -> None:
    """`--schedules`: every reader gets an hour (any of the 24) in one of ZONES; 70% daily
    (their previous digest was yesterday's), 30% weekly, due today at their hour."""
    with session_scope(settings) as session:
        ends = {digest.issue_date: digest.window_end for digest in store.list_digests(session)}
    yesterday = ends[(TODAY - timedelta(days=1)).date()]
    rows = []
    for subscriber_id in readers:
        zone, hour = rng.choice(ZONES), rng.randrange(24)
        due = SendClock.of(settings).next_send_at(
            Schedule("daily", hour, None, zone), TODAY - timedelta(seconds=1)
        )
        row = {"id": subscriber_id, "send_hour": hour, "timezone": zone, "next_send_at": due,
               "cadence": "daily", "send_day": None, "delivered_through": yesterday}  # fmt: skip
        if rng.random() < WEEKLY_SHARE:
            back = WEEK if rng.random() < 0.98 else rng.randint(2, WEEK - 1)
            row.update(cadence="weekly", send_day=due.astimezone(ZoneInfo(zone)).weekday(),
                       delivered_through=ends[(TODAY - timedelta(days=back)).date()])  # fmt: skip
        rows.append(row)
    with session_scope(settings) as session:
        session.execute(update(Subscriber), rows)


def serve_the_day(settings) -> tuple[list[int], int]:
    """`--schedules`: serve every quarter hour of the day, as the worker does; the digests
    given rows (the day's and the spans), and the distinct segments (digest, body)."""
    digests: dict[int, int] = {}
    bodies, editions = set(), {}  # as a worker keeps them between its servings
    for quarter in range(96):
        moment = TODAY + timedelta(minutes=15 * quarter)
        served = serve.serve_due(settings, moment, editions=editions)
        for digest_id, rows in served.digests.items():
            digests[digest_id] = digests.get(digest_id, 0) + rows
        bodies.update(
            (segment.content.date, segment.content.since, segment.topic_ids, segment.language,
             segment.followed)
            for segment in served.segments
        )  # fmt: skip
    return sorted(digests), len(bodies)


def write_rankings(settings, digest_id: int, rng: random.Random) -> None:
    """`--ranking`: every reader gets an order of their own, as the ranking step stores it (the
    papers of the digest, best first: here shuffled). What is measured is the assembly of each
    reader's email in their own order; training the models is the ranking step's cost, measured
    by bench/ranking_eval.py."""
    with session_scope(settings) as session:
        paper_ids = list(session.scalars(select(Paper.id)))
        readers = list(session.scalars(select(Subscriber.id)))
    for start in range(0, len(readers), 5_000):
        rows = []
        for subscriber_id in readers[start : start + 5_000]:
            order = paper_ids[:]
            rng.shuffle(order)
            rows.append((subscriber_id, order))
        with session_scope(settings) as session:
            store.put_rankings(session, digest_id, rows)


# ---------------------------------------------------------------------------- the build child


def run_build(digest_ids: list[int], share: int, shares: int) -> dict:
    """This process's share of the messages (every `shares`-th batch of rows of each digest),
    built by the Deliverer's `MessageBuilder` and none sent: the segments' rendering, then
    substitution. Timed without the reading of rows (a claim's work, counted in the send)."""
    settings = get_settings()
    rendering = [0.0, 0]
    real_render = messages.render_email

    def timed_render(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_render(*args, **kwargs)
        finally:
            rendering[0] += time.perf_counter() - started
            rendering[1] += 1

    messages.render_email = timed_render
    built = size = 0
    busy = 0.0
    for digest_id in digest_ids:
        builder = MessageBuilder(settings, digest_id)
        with session_scope(settings) as session:
            ids = session.scalars(
                select(Delivery.id).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
            ).all()
        batch = settings.send_batch_size
        # Every `shares`-th batch, as concurrent senders' claims would share them out.
        for start in range(share * batch, len(ids), shares * batch):
            with session_scope(settings) as session:  # a claim's reading: not in the build
                rows = store.claimed_rows(session, ids[start : start + batch])
                builder.prepare(session, rows)
            started = time.perf_counter()
            for row in rows:  # each message's bytes as DATA sends them: dot-stuffed
                size += len(builder.message(row).wire)
            busy += time.perf_counter() - started
            built += len(rows)
    return {
        "messages": built,
        "seconds": busy,
        "bytes": size,
        "renders": rendering[1],
        "render_seconds": rendering[0],
        "peak_rss_mb": peak_rss_mb(resource.RUSAGE_SELF),
    }


# ---------------------------------------------------------------------------- the send child


class SampledTransport:
    """The real transport; every SAMPLE_EVERY-th delivery's bytes kept on disk for checking."""

    def __init__(self, inner, folder: Path) -> None:
        self.inner, self.folder = inner, folder
        self.messages = self.bytes = 0

    def send(self, messages: Iterable[Outgoing]):
        return self.inner.send(self._sampled(messages))

    def _sampled(self, messages: Iterable[Outgoing]) -> Iterator[Outgoing]:
        for message in messages:
            self.messages += 1
            self.bytes += message.size
            if message.key % SAMPLE_EVERY == 0:
                (self.folder / f"{message.key}.eml").write_bytes(message.data)
                (self.folder / f"{message.key}.rcpt").write_text(message.recipient)
            yield message

    def close(self) -> None:
        self.inner.close()


def run_send(digest_ids: list[int], samples: Path) -> dict:
    settings = get_settings()
    renders = _counted(messages, "render_email")
    statements = [0]

    def count(*_args) -> None:
        statements[0] += 1

    event.listen(db.engine_for(settings.database_url), "before_cursor_execute", count)
    transport = SampledTransport(transport_from_settings(settings), samples)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every sender starts at once
    started = time.perf_counter()
    report = DeliveryReport()
    for digest_id in digest_ids:  # the day's digest, then the spans
        report.add(deliver_all(settings, digest_id, transport, wait_for_retries=False))
    elapsed = time.perf_counter() - started
    transport.close()
    return {
        "sent": report.sent,
        "failed": report.failed,
        "deferred": report.deferred,
        "handed": transport.messages,
        "bytes": transport.bytes,
        "seconds": elapsed,
        "statements": statements[0],
        "renders": renders[0],
        "peak_rss_mb": peak_rss_mb(resource.RUSAGE_SELF),
    }


def _counted(module, name: str) -> list[int]:
    """Count the calls of module.name (a list holding the count)."""
    count, function = [0], getattr(module, name)

    def counting(*args, **kwargs):
        count[0] += 1
        return function(*args, **kwargs)

    setattr(module, name, counting)
    return count


# ---------------------------------------------------------------------------- the parent


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postfix_bin() -> Path:
    done = subprocess.run([str(POSTFIX_TOOLS)], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


@contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    command = [str(postfix_bin() / "smtp-sink")]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    process = subprocess.Popen(
        [*command, f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"220"):
                        break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    why = process.stderr.read() if process.poll() is not None else error
                    raise RuntimeError(f"smtp-sink did not start: {why}") from error
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[str]:
    """SQLite in the folder, or a fresh schema of the PostgreSQL database, dropped after."""
    if not url:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        try:
            yield scoped
        finally:
            db.engine_for(scoped).dispose()  # its pooled connections would hold the schema
            db.engine_for.cache_clear()
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def child(role: str, digest_ids: list[int], *extra: str) -> subprocess.Popen:
    ids = ",".join(map(str, digest_ids))
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--digest-ids", ids, *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def result_of(process: subprocess.Popen, deadline: float) -> dict:
    try:
        output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        raise SystemExit("the benchmark ran out of time (--timeout)") from None
    if process.returncode != 0:
        raise SystemExit(f"a {process.args[3]} process failed ({process.returncode})")
    return json.loads(output.strip().splitlines()[-1])


def run_together(commands: list[list[str]], deadline: float) -> tuple[list[dict], float]:
    """Child processes started at once (each says "ready", then waits for "go"): their results
    and the wall time from "go" to the last one done."""
    children = [child(*command) for command in commands]
    try:
        for process in children:
            if process.stdout.readline().strip() != "ready":
                raise SystemExit(f"a {process.args[3]} process did not start")
        started = time.perf_counter()
        for process in children:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [result_of(process, deadline) for process in children]
        return results, time.perf_counter() - started
    finally:
        for process in children:
            if process.poll() is None:
                process.kill()
                process.wait()


def smtp_source_rate(port: int, connections: int, messages: int, size: int, deadline: float):
    """smtp-source's rate over `connections` connections, each reused for message after
    message (`-d`), as the senders reuse theirs: reconnecting per message is 20-37% slower, and
    would flatter the ratio."""
    command = [
        str(postfix_bin() / "smtp-source"),
        *("-d", "-s", str(connections), "-m", str(messages), "-l", str(size)),
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, timeout=max(1.0, deadline - time.monotonic()))
    return messages / (time.perf_counter() - started)


def check_samples(settings, digest_ids: list[int], folder: Path) -> tuple[int, list[str]]:
    """Each sampled message: valid MIME, the right person, their own working unsubscribe link."""
    with session_scope(settings) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.message_id, Subscriber.email, Subscriber.public_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id.in_(digest_ids), Delivery.id % SAMPLE_EVERY == 0)
        ).all()
    problems = []
    secret = settings.secret()
    for delivery_id, message_id, address, public_id in rows:
        path = folder / f"{delivery_id}.eml"
        if not path.exists():
            problems.append(f"delivery {delivery_id}: never handed to the server")
            continue
        try:
            problems += check_message(
                path.read_bytes(), (folder / f"{delivery_id}.rcpt").read_text(), secret,
                (message_id, address, public_id),
            )  # fmt: skip
        except Exception as error:  # noqa: BLE001 (a parser's complaint is the finding)
            problems.append(f"delivery {delivery_id}: {type(error).__name__}: {error}")
    return len(rows), problems


def check_message(data: bytes, recipient: str, secret: str, row: tuple[str, str, str]) -> list:
    message_id, address, public_id = row
    message = email.message_from_bytes(data, policy=policy.strict)  # raises on any defect
    found = []
    if recipient != address or message["To"] != address:
        found.append(f"addressed to {recipient} / {message['To']}, not {address}")
    if message["Message-ID"] != message_id:
        found.append(f"Message-ID {message['Message-ID']}, not {message_id}")
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    if set(parts) != {"text/plain", "text/html"} or any(p.defects for p in message.walk()):
        found.append(f"parts {sorted(parts)}, defects {[p.defects for p in message.walk()]}")
    header = re.match(r"<(https?://[^>]+)>", message["List-Unsubscribe"])
    link = header.group(1) if header else ""
    if f"Unsubscribe: {link}" not in parts.get("text/plain", "") or f'href="{link}"' not in (
        parts.get("text/html", "")
    ):
        found.append(f"the unsubscribe link {link!r} is not the one in the body")
    token = link.rsplit("/", 1)[-1]
    if read_token(secret, UNSUBSCRIBE, token) != public_id:
        found.append("the unsubscribe token is someone else's")
    header = message["List-Unsubscribe"]
    mailto = re.search(r"<mailto:[^>]*\?subject=unsubscribe%20([^>]+)>", header)
    if mailto is None or mailto.group(1) != token:
        found.append("the mailto: does not carry the unsubscribe token")
    return found


def run_benchmark(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    folder = Path(tempfile.mkdtemp(prefix="send-bench-"))
    samples = folder / "samples"
    samples.mkdir()
    port = free_port()
    try:
        with database(args.database_url, folder) as url, smtp_sink(port):
            os.environ.update(
                NEWSLETTER_DATABASE_URL=url,
                NEWSLETTER_VAR_DIR=str(folder / "var"),
                NEWSLETTER_SECRET_KEY=SECRET,
                NEWSLETTER_BASE_URL="https://digest.example.org",
                NEWSLETTER_FROM="arXiv Digest <digest@example.org>",
                NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=never",
                NEWSLETTER_HF_CODE_LINKS="false",
                # Translations are all stored (see populate): nothing is ever asked of this.
                NEWSLETTER_TRANSLATOR="libretranslate",
                NEWSLETTER_TRANSLATOR_URL="http://127.0.0.1:9",
            )
            for name in (
                "NEWSLETTER_REDIS_URL",
                "NEWSLETTER_SEND_RATE",
                "NEWSLETTER_DKIM_KEY_FILE",
            ):
                os.environ.pop(name, None)
            if args.redis_url:  # the send journal's home (nothing else here uses Redis)
                os.environ["NEWSLETTER_REDIS_URL"] = args.redis_url
            get_settings.cache_clear()
            settings = get_settings()
            db.upgrade(settings)
            started = time.perf_counter()
            readers = populate(settings, args.n, random.Random(args.seed), args.schedules)
            populated = time.perf_counter() - started
            started = time.perf_counter()
            if args.schedules:
                spread_schedules(settings, readers, random.Random(args.seed))
                digest_ids, segments = serve_the_day(settings)
            else:
                digest_id, prepared_segments = daily_send.prepare(settings, settings.today())
                digest_ids, segments = [digest_id], len(prepared_segments)
                del prepared_segments
            prepared = time.perf_counter() - started
            if args.ranking:
                for digest_id in digest_ids:
                    write_rankings(settings, digest_id, random.Random(args.seed))
            shares = args.build_processes
            builders = [
                result_of(process, deadline)
                for process in [
                    child("build", digest_ids, "--share", str(k), "--shares", str(shares))
                    for k in range(shares)
                ]
            ]
            build_seconds = max(result["seconds"] for result in builders)  # they run at once
            if args.redis_url:  # a fresh database numbers its digest as an earlier run's did
                with redis.Redis.from_url(args.redis_url) as client:
                    for digest_id in digest_ids:
                        client.delete(RedisJournal(args.redis_url, digest_id).key)
            senders, send_seconds = run_together(
                [["send", digest_ids, "--samples", str(samples)]] * args.processes, deadline
            )
            sent = sum(result["sent"] for result in senders)
            states: dict[str, int] = {}
            with session_scope(settings) as session:
                for digest_id in digest_ids:
                    for state, count in store.delivery_counts(session, digest_id).items():
                        states[state] = states.get(state, 0) + count
            journal_left = sum(journal_entries(settings, d) for d in digest_ids)
            checked, problems = check_samples(settings, digest_ids, samples)
            shutil.rmtree(samples)
            size = round(sum(result["bytes"] for result in senders) / max(1, sent))
            source_messages = min(args.n, SOURCE_MAX_MESSAGES)
            source_rate = smtp_source_rate(port, args.processes, source_messages, size, deadline)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    if states != {"sent": args.n} or sent != args.n:
        problems.append(f"deliveries {states}, {sent} reported sent, for {args.n} subscribers")
    schedule = (
        f"; readers over 24 hour slots in {len(ZONES)} zones, {WEEKLY_SHARE:.0%} weekly, served"
        f" every quarter hour of a day into {len(digest_ids)} digests (the day's and spans)"
        if args.schedules
        else ""
    )
    if journal_left:
        problems.append(f"the send journal still holds {journal_left} entries or files")
    statements = sum(result["statements"] for result in senders)
    send_rate = sent / send_seconds
    built = sum(result["messages"] for result in builders)
    build_busy = sum(result["seconds"] for result in builders)  # = build_seconds with one
    peak = max(peak_rss_mb(resource.RUSAGE_SELF), peak_rss_mb(resource.RUSAGE_CHILDREN))
    print(
        f"data: {args.n} subscribers, {len(TOPICS)} topics, {len(LANGUAGES)} languages,"
        f" {segments} segments{schedule}; messages of {size / 1000:.0f} kB on average; written in"
        f" {populated:.1f} s; prepare (the delivery rows) {prepared:.1f} s\n"
        f"build: {built} messages by {shares} processes in {build_seconds:.2f} s;"
        f" {sum(r['renders'] for r in builders)} renders taking"
        f" {sum(r['render_seconds'] for r in builders):.2f} s; one process alone:"
        f" {built / build_busy:.0f} messages/s; peak RSS {_each(builders, 'peak_rss_mb')} MB\n"
        f"send: {sent} messages by {args.processes} processes in {send_seconds:.1f} s;"
        f" {sum(r['renders'] for r in senders)} renders; {statements} SQL statements;"
        f" peak RSS {_each(senders, 'peak_rss_mb')} MB\n"
        f"smtp-source: {args.processes} connections, {source_messages} messages of {size} bytes"
        f" at {source_rate:.0f}/s\n"
        f"sample: {checked} messages checked, {len(problems)} problems"
    )
    print_problems(problems)
    figures = {
        "n": args.n,
        "build_msgs_per_s": round(built / build_seconds),
        "send_msgs_per_s": round(send_rate),
        "smtp_source_msgs_per_s": round(source_rate),
        "ratio_to_smtp_source": round(send_rate / source_rate, 2),
        "peak_rss_mb": round(peak),
        "sql_statements_per_1000": round(statements / max(1, sent) * 1000, 1),
        "journal": "redis" if args.redis_url else "file",
        "ranking": args.ranking,
        "schedules": args.schedules,
        "digests": len(digest_ids),
        "segments": segments,
    }
    print(json.dumps(figures), flush=True)
    return 1 if problems or checked < args.n // SAMPLE_EVERY else 0


def print_problems(problems: list[str]) -> None:
    """The first 20 problems found, one a line."""
    for problem in problems[:20]:
        print(f"  PROBLEM {problem}")


def journal_entries(settings, digest_id: int) -> int:
    """What the send journal still holds once every sender is done: Redis entries, or files."""
    if settings.redis_url is not None:
        journal = RedisJournal(settings.redis_url.get_secret_value(), digest_id)
        client = redis.Redis.from_url(journal.url)
        try:
            return client.hlen(journal.key)
        finally:
            client.close()
    folder = settings.var_dir / FOLDER
    return len(list(folder.iterdir())) if folder.exists() else 0


def _each(results: list[dict], key: str) -> str:
    return ", ".join(f"{result[key]:.0f}" for result in results)


def _ids(value: str) -> list[int]:
    return [int(part) for part in value.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="subscribers (default 10000)")
    parser.add_argument("--processes", type=int, default=3, help="sending processes (3)")
    parser.add_argument(
        "--build-processes",
        type=int,
        default=1,
        help="processes building the messages at once, each every n-th batch (1)",
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--redis-url",
        help="the send journal in this Redis database, one nothing else uses (default: files)",
    )
    parser.add_argument("--seed", type=int, default=7, help="of the synthetic data (7)")
    parser.add_argument(
        "--ranking",
        action="store_true",
        help="every reader has their own order of the papers (ranking on for all)",
    )
    parser.add_argument(
        "--schedules",
        action="store_true",
        help="readers over 24 hour slots and both cadences, served through a day",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds in all (1800)")
    parser.add_argument("--role", choices=["build", "send"], help=argparse.SUPPRESS)
    parser.add_argument("--digest-ids", type=_ids, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--share", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--shares", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "build":
        build = (run_build, args.digest_ids, args.share, args.shares)
        if os.environ.get("SEND_BENCH_PROFILE"):  # cProfile the build into that file
            import cProfile

            profile = cProfile.Profile()
            result = profile.runcall(*build)
            profile.dump_stats(f"{os.environ['SEND_BENCH_PROFILE']}.{args.share}")
        else:
            result = build[0](*build[1:])
        print(json.dumps(result))
        return 0
    if args.role == "send":
        print(json.dumps(run_send(args.digest_ids, args.samples)))
        return 0
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
