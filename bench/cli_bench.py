"""How long the CLI takes to start: `newsletter --help` and `newsletter subscribers list`,
beside the floor under them: the libraries they are built on, imported alone.

    python bench/cli_bench.py
    python bench/cli_bench.py --runs 30

Each command runs `--runs` times as a subprocess, the installed `newsletter` script beside the
Python running the bench, `subscribers list` on a small SQLite database (the examples of
`newsletter init --examples`, in a temporary folder). The wall time of each run is measured
from the start of the process to its exit (the median, the 90th percentile and the fastest),
and so is its CPU time (user and system, the child's own): on a machine shared with other
work the wall time stretches with the others' load, the CPU time much less. The load
average is printed with them.

Two floors under `subscribers list`, timed the same way after the commands:
- `libraries alone`: the same Python importing what `subscribers list` cannot start without
  and nothing of the project: SQLAlchemy's ORM (the store), pydantic-settings (the settings),
  Typer (the CLI) and Rich's tables (the listing); `above_libraries_s` is how far above it
  `subscribers list` starts;
- `same job, libraries only`: `bench/cli_floor.py list`, the same job done with those libraries
  and nothing of the project (a settings class, two mapped tables, a Typer command with the same
  options, the query and a Rich table), on the same database; the bench checks that it counts
  the subscribers `subscribers list` counts. No command that reads the database through
  SQLAlchemy with these libraries starts faster on the machine measured, whatever the project
  does; `above_same_job_s` is the project's own share.

The last line printed is one JSON object with the figures (see the README's "Performance").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEWSLETTER = Path(sys.executable).parent / "newsletter"
"""The installed command, beside the Python running the bench (a venv's `bin`)."""
FLOOR = Path(__file__).with_name("cli_floor.py")
LIBRARIES = "import sqlalchemy.orm, pydantic_settings, typer, rich.table"
"""What `subscribers list` imports that is not the project's (and the standard library's)."""
COMMANDS = {
    "help": [str(NEWSLETTER), "--help"],
    "subscribers list": [str(NEWSLETTER), "subscribers", "list"],
    "libraries alone": [sys.executable, "-c", LIBRARIES],
    "same job, libraries only": [sys.executable, str(FLOOR), "list"],
}
LISTINGS = ("subscribers list", "same job, libraries only")
COUNT = re.compile(rb"^(\d+) subscriber\(s\)$", re.MULTILINE)


def timed_runs(
    argv: list[str], runs: int, env: dict[str, str], folder: Path
) -> tuple[list[float], list[float]]:
    """Each run's wall time, and its CPU time (user and system, the child's own)."""
    walls, cpus = [], []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(
            argv,
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(argv)} failed")
    return walls, cpus


def listed(argv: list[str], env: dict[str, str], folder: Path) -> int:
    """How many subscribers a listing says it printed."""
    done = subprocess.run(argv, env=env, cwd=folder, check=True, capture_output=True)
    found = COUNT.search(done.stdout)
    if found is None:
        sys.exit(f"{' '.join(argv)} printed no count")
    return int(found.group(1))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # An installed command runs from compiled bytecode: PYTHONDONTWRITEBYTECODE (which
        # some shells set) would have every run compile the project's modules again (~35 ms).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NEWSLETTER_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            NEWSLETTER_VAR_DIR=str(folder / "var"),
            NEWSLETTER_DATABASE_URL=f"sqlite:///{folder / 'small.db'}",
            COLUMNS="100",
        )
        subprocess.run(
            [str(NEWSLETTER), "init", "--examples"],
            env=env,
            cwd=folder,
            check=True,
            capture_output=True,
        )
        counts = {label: listed(COMMANDS[label], env, folder) for label in LISTINGS}
        if len(set(counts.values())) != 1:
            sys.exit(f"the floor does not list what the command lists: {counts}")
        for label, argv in COMMANDS.items():
            timed_runs(argv, 1, env, folder)  # a first run warms the file cache, writes bytecode
            walls, cpus = timed_runs(argv, args.runs, env, folder)
            figures = {
                "runs": args.runs,
                "median_s": round(statistics.median(walls), 3),
                "p90_s": round(percentile(walls, 0.9), 3),
                "min_s": round(min(walls), 3),
                "cpu_median_s": round(statistics.median(cpus), 3),
            }
            results[label] = figures
            print(
                f"{label:26} median {figures['median_s']:.3f} s,"
                f" p90 {figures['p90_s']:.3f} s, min {figures['min_s']:.3f} s,"
                f" CPU median {figures['cpu_median_s']:.3f} s",
                file=sys.stderr,
            )
    listing, floor = results["subscribers list"], results["libraries alone"]
    listing["above_libraries_s"] = round(listing["median_s"] - floor["median_s"], 3)
    same_job = results["same job, libraries only"]
    listing["above_same_job_s"] = round(listing["median_s"] - same_job["median_s"], 3)
    print(json.dumps({"bench": "cli_start", "load_average": os.getloadavg(), **results}))


if __name__ == "__main__":
    main()
