"""A bounded web load against the app under gunicorn (the Procfile's command, 2 workers) on
127.0.0.1 and PostgreSQL.

    python bench/web_bench.py
    python bench/web_bench.py --seconds 10 --clients 4 --database-url postgresql+psycopg://postgres@127.0.0.1/test

A fresh schema of the PostgreSQL database given (dropped afterwards) gets send_bench's
synthetic list (`--n` subscribers over 20 topics, 3-25 new papers a topic) and today's digest
built for them. Then gunicorn serves it, and `--clients` processes, each with a connection of
its own per request (gunicorn's sync workers close every connection), hit one path at a time
for `--seconds` each:

1. one-click: RFC 8058 POST `List-Unsubscribe=One-Click` to `/unsubscribe/<token>`, each
   request for a reader not yet unsubscribed (so every one writes its status, event and
   webhook row: an endpoint listening to `subscriber.unsubscribed` is registered);
2. archive, conditional: GET `/digests/<today>` with the `If-None-Match` the page gave (304);
3. archive, unconditional: the same page in full;
4. subscribe: the form's POST (its CSRF token and cookie from one GET per client), a new
   address each time; the confirmation is queued (no worker runs here; the queue's depth is
   reported).

Afterwards the database is checked: every one-click answered 200 unsubscribed exactly its
reader, with one event and one webhook row each. Figures are requests per second and p50/p99
latency (ms) per path; the last line printed is one JSON object with them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import redis  # noqa: E402
from send_bench import SECRET, database, free_port, populate  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from newsletter import db, store  # noqa: E402
from newsletter.config import get_settings  # noqa: E402
from newsletter.daily import send as daily_send  # noqa: E402
from newsletter.db import session_scope  # noqa: E402
from newsletter.intake.webhooks import WebhookSpec  # noqa: E402
from newsletter.models import Event, Subscriber, SubscriberStatus, WebhookDelivery  # noqa: E402
from newsletter.tokens import DigestLinks  # noqa: E402

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
SERVER_PID = [0]
"""gunicorn's master process, once started."""
PATHS = ("one_click", "archive_304", "archive_200", "subscribe")


# ---------------------------------------------------------------------------- the clients


def request(port: int, method: str, path: str, body: bytes = b"", headers=None):
    """One request on a connection of its own: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def client(job: tuple) -> dict:
    """One client process's loop over its share of a path, until `seconds` have passed."""
    port, path_kind, seconds, share, extra = job
    latencies, statuses = [], {}
    headers, fixed = extra.get("headers", {}), extra.get("body", b"")
    stop = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < stop and (share is None or done < len(share)):
        if path_kind == "one-click":
            method, path, body = "POST", share[done], ONE_CLICK_BODY
            headers = {"Content-Type": FORM}
        elif path_kind == "subscribe":
            fields = {**extra["fields"], "email": f"{extra['prefix']}{done}@example.org"}
            method, path, body = "POST", "/subscribe", urlencode(fields, doseq=True).encode()
        else:
            method, path, body = "GET", extra["path"], fixed
        started = time.perf_counter()
        status, _headers, _body = request(port, method, path, body, headers)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        done += 1
    return {"latencies": latencies, "statuses": statuses, "done": done}


def server_cpu(master: int) -> float:
    """Seconds of CPU gunicorn's workers (the master's children) have used so far."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == master:  # ppid
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def load(port: int, kind: str, clients: int, seconds: float, shares, extras) -> dict:
    """`clients` processes at once on one path; its rate, latencies, and the CPU time
    gunicorn's workers spent per request (steadier than the rate on a shared machine)."""
    jobs = [(port, kind, seconds, shares[n], extras[n]) for n in range(clients)]
    cpu = server_cpu(SERVER_PID[0])
    started = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client, jobs)
    elapsed = time.perf_counter() - started
    cpu = server_cpu(SERVER_PID[0]) - cpu
    latencies = sorted(value for result in results for value in result["latencies"])
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    count = len(latencies)
    return {
        "requests": count,
        "req_per_s": round(count / elapsed, 1),
        "p50_ms": round(latencies[count // 2] * 1000, 2) if count else None,
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 2) if count else None,
        "server_cpu_ms": round(cpu / count * 1000, 2) if count else None,
        "statuses": statuses,
    }


# ---------------------------------------------------------------------------- the server


def gunicorn(port: int, log: Path) -> subprocess.Popen:
    """The Procfile's web command on 127.0.0.1:`port`, up and answering."""
    line = (REPO / "Procfile").read_text().split("web:", 1)[1].splitlines()[0]
    line = line.replace("0.0.0.0:${PORT:-8000}", f"127.0.0.1:{port}")
    command = [sys.executable, "-m", *line.split()]
    command = [part.strip("'") for part in command]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn stopped:\n{log.read_text()}")
        try:
            request(port, "GET", "/healthz")
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gunicorn never answered:\n{log.read_text()}")


def form_session(port: int) -> tuple[dict, str]:
    """The subscribe form's cookie and CSRF token, as a browser gets them."""
    status, headers, body = request(port, "GET", "/subscribe")
    assert status == 200, status
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    token = body.decode().split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return {"Cookie": cookie, "Content-Type": FORM}, token


# ---------------------------------------------------------------------------- the run


def run_benchmark(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="web-bench-"))
    port = free_port()
    try:
        with database(args.database_url, folder) as url:
            chosen = {"database_url": url, "var_dir": str(folder / "var"), "secret_key": SECRET,
                      "base_url": "http://127.0.0.1", "hf_code_links": "false",
                      "log_level": "WARNING"}  # fmt: skip
            os.environ.update({f"NEWSLETTER_{key.upper()}": value for key, value in chosen.items()})
            for name in ("NEWSLETTER_REDIS_URL", "NEWSLETTER_SMTP_URL", "NEWSLETTER_TRANSLATOR"):
                os.environ.pop(name, None)
            if args.redis_url:  # the queue the confirmations go to (emptied before and after)
                os.environ["NEWSLETTER_REDIS_URL"] = args.redis_url
                redis.Redis.from_url(args.redis_url).flushdb()
            get_settings.cache_clear()
            settings = get_settings()
            db.upgrade(settings)
            readers = populate(settings, args.n, random.Random(args.seed))
            today = datetime.now(UTC).date()
            daily_send.build_daily(settings, today)
            with session_scope(settings) as session:
                spec = WebhookSpec("http://127.0.0.1:9/hook", ("subscriber.unsubscribed",))
                store.add_webhook(session, spec, "bench-webhook-secret")
                rows = session.execute(select(Subscriber.id, Subscriber.public_id))
                public_ids = dict(rows.all())
            db.engine_for(url).dispose()  # no connection of ours across gunicorn's fork
            links = DigestLinks("", SECRET, today)
            paths = [links.links(public_ids[reader])[0] for reader in readers]
            server = gunicorn(port, folder / "gunicorn.log")
            SERVER_PID[0] = server.pid
            try:
                figures = measure(args, port, paths, today.isoformat())
            finally:
                server.terminate()
                server.wait(timeout=30)
            answered = figures.get("one_click", {}).get("statuses", {}).get("200", 0)
            figures["checks"] = check(settings, answered)
            return figures
    finally:
        if args.redis_url:
            redis.Redis.from_url(args.redis_url).flushdb()
        shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, port: int, paths: list[str], day: str) -> dict:
    clients, seconds = args.clients, args.seconds
    page = f"/digests/{day}"
    status, headers, body = request(port, "GET", page)
    assert status == 200, (status, body[:500])
    validators = {}
    if headers.get("ETag"):
        validators["If-None-Match"] = headers["ETag"]
    elif headers.get("Last-Modified"):
        validators["If-Modified-Since"] = headers["Last-Modified"]
    figures: dict = {"page_kb": round(len(body) / 1000, 1), "conditional_headers": validators}
    shares = [paths[n::clients] for n in range(clients)]
    nothing = [None] * clients
    if "one_click" in args.paths:
        figures["one_click"] = load(port, "one-click", clients, seconds, shares, [{}] * clients)
    conditional = {"path": page, "headers": validators}
    if "archive_304" in args.paths:
        extras = [conditional] * clients
        figures["archive_304"] = load(port, "get", clients, seconds, nothing, extras)
    plain = {"path": page, "headers": {}}
    if "archive_200" in args.paths:
        figures["archive_200"] = load(port, "get", clients, seconds, nothing, [plain] * clients)
    if "subscribe" not in args.paths:
        return figures
    topics = _topic_slugs()[:2]
    extras = []
    for n in range(clients):
        cookie, token = form_session(port)
        fields = {"csrf_token": token, "topics": topics, "language": "en"}
        extras.append({"headers": cookie, "fields": fields, "prefix": f"bench-{n}-"})
    figures["subscribe"] = load(port, "subscribe", clients, seconds, nothing, extras)
    return figures


def _topic_slugs() -> list[str]:
    with session_scope(get_settings()) as session:
        return [topic.slug for topic in store.list_topics(session)]


def check(settings, answered: int) -> dict:
    """What the one-click POSTs left in the database: one status, event and webhook row each."""
    with session_scope(settings) as session:
        gone = session.scalar(
            select(func.count()).where(Subscriber.status == SubscriberStatus.unsubscribed)
        )
        events = session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "unsubscribed")
        )
        hooks = session.scalar(select(func.count()).select_from(WebhookDelivery))
    ok = answered == gone == events == hooks
    return {"answered_200": answered, "unsubscribed": gone, "events": events, "webhook_rows": hooks,
            "ok": ok}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=POSTGRES_URL)
    parser.add_argument("--n", type=int, default=20_000, help="subscribers on the list")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="load on each path")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--redis-url",
        help="queue on this Redis database (one nothing else uses: it is emptied), as in"
        " production; default: Huey's SQLite file",
    )
    parser.add_argument(
        "--paths", default=",".join(PATHS), type=lambda value: value.split(","),
        help=f"which loads to run, of {','.join(PATHS)}",
    )  # fmt: skip
    args = parser.parse_args()
    figures = run_benchmark(args)
    for name in args.paths:
        row = figures[name]
        print(f"{name:12} {row['req_per_s']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms"
              f"  p99 {row['p99_ms']:7.2f} ms  server CPU {row['server_cpu_ms']:.2f} ms/request"
              f"  {row['statuses']}")  # fmt: skip
    print(f"page {figures['page_kb']} KB; checks {figures['checks']}")
    print(json.dumps(figures))
    return 0 if figures["checks"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
