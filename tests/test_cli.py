"""Setting up and looking around: init, preview, serve, and the package as installed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.test_digest import paper, store_papers, subscribe


@pytest.mark.parametrize("database_url", [None])  # the embedded default: a SQLite file
def test_init_with_examples_is_safe_to_repeat(cli, settings):
    first = cli("init", "--examples").output
    assert "8 added" in first and "3 added" in first
    assert (settings.var_dir / "newsletter.db").exists()
    assert (settings.var_dir / "secret_key").exists()
    key = (settings.var_dir / "secret_key").read_text()
    second = cli("init", "--examples").output
    assert "0 added" in second
    assert (settings.var_dir / "secret_key").read_text() == key


def test_preview_writes_the_subscribers_email(cli, settings, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1, "Loop closure for everyone"))
    out = settings.var_dir / "ada.html"
    cli("preview", "--subscriber", "ada@example.org", "-o", str(out))
    html = out.read_text()
    assert "Loop closure for everyone" in html
    assert "/unsubscribe/" in html and "__NEWSLETTER_UNSUBSCRIBE_URL__" not in html
    default = cli("preview", "--topic", "SLAM").output
    assert "preview" in default and "topics-" in default


def test_preview_of_an_unknown_subscriber_is_a_clear_error(cli, example_topics):
    result = cli("preview", "--subscriber", "nobody@example.org", ok=False)
    assert result.exit_code == 1
    assert "no subscriber with the address 'nobody@example.org'" in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_on_the_port_it_was_given(settings, cli):
    cli("init")
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from newsletter.cli import main; main()",
        "serve",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "newsletter serve did not start in 20 s"
                time.sleep(0.1)
        assert answer.json() == {"ok": True}
        assert answer.headers["X-Frame-Options"] == "DENY"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_normal_install_ships_templates_and_examples(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "newsletter/templates/email/digest.mjml.j2",
        "newsletter/templates/email/digest.txt.j2",
        "newsletter/templates/web/base.html.j2",
        "newsletter/templates/web/static/style.css",
        "newsletter/examples/topics.toml",
        "newsletter/examples/example.csv",
        "newsletter/migrations/env.py",
        "newsletter/migrations/script.py.mako",
        "newsletter/migrations/versions/0001_initial_schema.py",
    ]:
        assert needed in names, f"{needed} is missing from the wheel"
