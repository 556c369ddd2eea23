"""Import N subscribers from a CSV through the CLI, on SQLite and on PostgreSQL.

    python bench/import_bench.py --n 100000
    python bench/import_bench.py --n 10000,100000 --backends sqlite
    python bench/import_bench.py --n 100000 --postgres-url postgresql+psycopg://postgres@127.0.0.1/test

For each backend and each N: a fresh database (SQLite in a temporary folder, or a schema of its
own in the PostgreSQL database given, dropped afterwards) with the example topics, and a CSV
of N rows as a real list looks: 1 to 3 topics in any case, five languages, some text-only
readers, some followed authors, some rhythms (weekly on a day at an hour in a zone, daily at
an hour), and about 1 row in 100 bad (an invalid address, an unknown topic, a language that is
none, an address repeated, an hour that is none: that last row is kept without it). Then
`newsletter subscribers import` runs as a subprocess, the real command, and the bench checks
its summary line and rejected lines against what the CSV holds, and the database's count.

Statements are counted in that same process: it is started as `python -c` with a SQLAlchemy
`before_cursor_execute` listener on every engine (an executemany is one statement), and then
`newsletter.cli.main()`, which is what the `newsletter` script runs. A PostgreSQL COPY goes
through the driver, not SQLAlchemy, and is not counted (four a chunk of 1,000 rows). Peak RSS
is the child's own (`wait4`), and so is its CPU time (user and system): on a shared machine
the wall time stretches with the others' work, the CPU time much less; both are shown.

The last line printed is one JSON object with the figures (see the README's "Performance").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEWSLETTER = Path(sys.executable).parent / "newsletter"
"""The installed command, beside the Python running the bench (a venv's `bin`)."""
TOPICS = ["MLLM", "Diffusion", "SLAM", "SFM", "Visual Localization", "NeRF", "Image Matching"]
LANGUAGES = ["en", "en", "en", "zh", "de", "fr", "zh-TW"]
AUTHORS = ["Kaiming He", "Saining Xie", "Andrea Vedaldi", "Fei-Fei Li", "Yann LeCun"]
HEADER = "email,name,topics,language,format,follows,cadence,day,hour,timezone\n"
COUNTED = """
import atexit, os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
count = [0]
@event.listens_for(Engine, "before_cursor_execute")
def _count(*args):
    count[0] += 1
atexit.register(lambda: open(os.environ["IMPORT_BENCH_COUNT_TO"], "w").write(str(count[0])))
sys.argv = ["newsletter", *sys.argv[1:]]
from newsletter.cli import main
main()
"""
"""The child: the CLI's own entry point, with every statement counted."""


def write_csv(path: Path, n: int, seed: int = 17) -> dict[str, int]:
    """N rows (one bad in about 100); what the import should report of them."""
    rng = random.Random(seed)
    expected = {"added": 0, "rejected_rows": 0, "partial": 0}
    previous_added = False
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(n):
            topics = ";".join(rng.sample(TOPICS, rng.randint(1, 3)))
            if rng.random() < 0.2:
                topics = topics.lower()  # topics match in any case
            language = rng.choice(LANGUAGES)
            mail_format = "text" if rng.random() < 0.1 else ""
            follows = ";".join(rng.sample(AUTHORS, rng.randint(1, 2))) if rng.random() < 0.1 else ""
            rhythm = ",,,"
            draw = rng.random()
            if draw < 0.1:
                rhythm = "weekly,mon,7,Asia/Shanghai"
            elif draw < 0.15:
                rhythm = "daily,,6,Europe/Berlin"
            email = f"reader{i}@example.org"
            bad = rng.random() < 0.01 and i > 0
            kind = rng.randrange(5) if bad else -1
            if kind == 0:
                email = f"reader{i}@@example.org"
            elif kind == 1:
                topics = "Quantum Gravity"
            elif kind == 2:
                language = "klingon please"
            elif kind == 3 and previous_added:
                email = f"READER{i - 1}@example.org"  # the row before, in another case
            elif kind == 3:
                kind = -1
            elif kind == 4:
                rhythm = ",,25,"  # no hour: reported, the rest of the row is kept
            previous_added = kind in (-1, 4)
            if previous_added:
                expected["added"] += 1
                expected["partial"] += kind == 4
            else:
                expected["rejected_rows"] += 1
            name = f'"Reader {i}, Jr."' if i % 7 == 0 else f"Reader {i}"
            out.write(f"{email},{name},{topics},{language},{mail_format},{follows},{rhythm}\n")
    return expected


@contextmanager
def database(kind: str, folder: Path, postgres_url: str) -> Iterator[str]:
    """SQLite in the folder, or a fresh schema of the PostgreSQL database, dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            joint = "&" if "?" in postgres_url else "?"
            yield f"{postgres_url}{joint}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def environment(folder: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_VAR_DIR=str(folder / "var"), NEWSLETTER_DATABASE_URL=url)
    return env


def run_import(csv_path: Path, env: dict[str, str], folder: Path) -> dict:
    """`newsletter subscribers import` in a child: its wall time, peak RSS, output, count."""
    count_to = folder / "statements"
    env = {**env, "IMPORT_BENCH_COUNT_TO": str(count_to)}
    command = [sys.executable, "-c", COUNTED, "subscribers", "import", str(csv_path)]
    out_path, err_path = folder / "stdout", folder / "stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=folder, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(child.pid, 0)  # its own peak RSS, not the bench's
        wall = time.perf_counter() - started
    return {
        "wall": wall,
        "exit": os.waitstatus_to_exitcode(status),
        "stdout": out_path.read_text(),
        "stderr": err_path.read_text(),
        "statements": int(count_to.read_text()),
        "peak_rss_kb": usage.ru_maxrss,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def count_subscribers(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM subscribers")).scalar_one()
    finally:
        engine.dispose()


def bench_one(kind: str, n: int, postgres_url: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "subscribers.csv"
        expected = write_csv(csv_path, n)
        with database(kind, folder, postgres_url) as url:
            env = environment(folder, url)
            for step in (
                ["db", "upgrade"],
                ["topics", "import", str(REPO / "subscribers" / "topics.toml")],
            ):
                subprocess.run(
                    [str(NEWSLETTER), *step], env=env, cwd=folder, check=True, capture_output=True
                )
            result = run_import(csv_path, env, folder)
            summary = result["stdout"].strip().splitlines()[-1] if result["stdout"].strip() else ""
            found = re.fullmatch(r"(\d+) added; (\d+) rejected\.", summary)
            rejected_lines = [
                line for line in result["stderr"].splitlines() if ": rejected: " in line
            ]
            stored = count_subscribers(url)
        rejected = expected["rejected_rows"] + expected["partial"]
        ok = (
            result["exit"] == 1
            and found is not None
            and int(found.group(1)) == expected["added"] == stored
            and int(found.group(2)) == rejected == len(rejected_lines)
        )
        if not ok:
            print(result["stderr"][-2000:], file=sys.stderr)
        return {
            "backend": kind,
            "rows": n,
            "added": stored,
            "rejected": len(rejected_lines),
            "seconds": round(result["wall"], 2),
            "rows_per_second": round(n / result["wall"]),
            # What the import itself used of the CPU: steadier than the wall time on a shared
            # machine, where others' work stretches the wall time and not this.
            "cpu_seconds": round(result["cpu"], 2),
            "rows_per_cpu_second": round(n / result["cpu"]),
            "statements": result["statements"],
            "statements_per_row": round(result["statements"] / n, 4),
            "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
            "report_checked": ok,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000", help="rows; several: 10000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    results = []
    for kind in args.backends.split(","):
        for n in (int(value) for value in args.n.split(",")):
            figures = bench_one(kind, n, args.postgres_url)
            print(
                f"{kind:10} {n:>7} rows: {figures['seconds']:7.2f} s,"
                f" {figures['rows_per_second']:>6} rows/s"
                f" ({figures['rows_per_cpu_second']} a CPU second),"
                f" {figures['statements_per_row']} statements/row,"
                f" peak {figures['peak_rss_mb']} MB, report checked: {figures['report_checked']}",
                file=sys.stderr,
            )
            results.append(figures)
    print(json.dumps({"bench": "import", "results": results}))
    if not all(figures["report_checked"] for figures in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
