"""The deployment files work: the systemd units pass `systemd-analyze verify` without a
warning, and start the commands the Procfile and the CLI know.

The units assume /srv/newsletter; here they are checked with that folder replaced by a
temporary one and the virtual environment by the one running the tests, so that verify can
check that each program exists and is executable.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, skip_or_fail_in_ci

UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/srv/newsletter"


def unit_lines(name: str) -> list[str]:
    return (UNITS / name).read_text(encoding="utf-8").splitlines()


def exec_start(name: str) -> list[str]:
    (line,) = [line for line in unit_lines(name) if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.parametrize("name", ["newsletter-web.service", "newsletter-worker.service"])
def test_the_units_verify_without_a_warning(name, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail_in_ci("systemd-analyze is missing (apt-get install systemd)")
    environment = tmp_path / "newsletter.env"
    shutil.copy(UNITS / "newsletter.env.example", environment)
    text = (UNITS / name).read_text(encoding="utf-8")
    text = text.replace(f"{INSTALLED}/.venv/bin/", f"{Path(sys.executable).parent}/")
    text = text.replace("/etc/newsletter/newsletter.env", str(environment))
    text = text.replace(INSTALLED, str(tmp_path))
    (tmp_path / "var").mkdir()
    unit = tmp_path / name
    unit.write_text(text, encoding="utf-8")

    checked = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )

    assert checked.returncode == 0, checked.stderr
    # Unknown keys and bad values are only warnings to verify: none may be printed.
    assert checked.stderr.strip() == "" and checked.stdout.strip() == "", checked.stderr


def test_the_web_unit_runs_the_procfile_s_command_on_loopback():
    procfile = (REPO / "Procfile").read_text(encoding="utf-8").splitlines()
    (web,) = [line.removeprefix("web: ") for line in procfile if line.startswith("web: ")]
    procfile_args = shlex.split(web.replace("0.0.0.0:${PORT:-8000}", "127.0.0.1:8000"))
    unit_args = exec_start("newsletter-web.service")
    assert Path(unit_args[0]).name == "gunicorn"
    assert unit_args[1:] == procfile_args[1:]


def test_the_worker_unit_runs_a_command_the_cli_knows():
    args = exec_start("newsletter-worker.service")
    assert Path(args[0]).name == "newsletter" and args[1] == "worker"
    checked = subprocess.run(
        [Path(sys.executable).parent / "newsletter", *args[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    # Huey's graceful stop: batches in hand hand back what they did not send.
    assert "KillSignal=SIGINT" in unit_lines("newsletter-worker.service")
