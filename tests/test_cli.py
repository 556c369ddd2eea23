"""Setting up and looking around: init, preview, serve, and the package as installed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.arxiv_server import ArxivServer
from tests.helpers import COMMANDS, REPO, free_port, paper, set_env, store_papers, subscribe


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


# ---------------------------------------------------------------- one "today"


def zone_where_the_date_is_not_utcs() -> str:
    """A zone whose date is not UTC's at this moment: UTC+14's differs from 10:00 UTC on,
    UTC-11's until 11:00, so one always does; of the two, the one further from its own
    midnight, so the test does not straddle a change of date."""
    now = datetime.now(UTC)

    def minutes_from_midnight(name: str) -> int:
        local = now.astimezone(ZoneInfo(name))
        minutes = local.hour * 60 + local.minute
        return min(minutes, 24 * 60 - minutes)

    differing = [
        name
        for name in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
        if now.astimezone(ZoneInfo(name)).date() != now.date()
    ]
    return max(differing, key=minutes_from_midnight)


@pytest.mark.parametrize("database_url", [None])  # about dates, not the database: run once
def test_preview_export_and_send_agree_on_today_in_the_time_zone(
    cli, settings, monkeypatch, example_topics
):
    zone = zone_where_the_date_is_not_utcs()
    settings = set_env(monkeypatch, timezone=zone)
    today = datetime.now(ZoneInfo(zone)).date()
    assert today != datetime.now(UTC).date()  # else the test could not tell the two apart
    assert settings.today() == today
    cli("preview", "--topic", "SLAM")
    assert (settings.var_dir / "preview" / f"topics-{today.isoformat()}.html").is_file()
    assert json.loads(cli("export", "json").output)["updated"] == today.isoformat()
    assert f"Digest {today.isoformat()}:" in cli("send", "--dry-run").output


def test_every_date_option_says_whose_today_it_defaults_to():
    with_date = {
        " ".join(path): option
        for path, command in COMMANDS
        for option in command.params
        if "--date" in option.opts
    }
    assert {"send", "export markdown", "export json"} <= set(with_date)
    for name, option in with_date.items():
        assert "today in NEWSLETTER_TIMEZONE" in option.help, name


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
        assert answer.status_code == 200  # what it says is test_health's business
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


def test_run_and_send_with_nothing_to_do_say_what_to_add_and_exit_1(cli, settings, monkeypatch):
    with ArxivServer() as server:  # no request may reach it
        set_env(monkeypatch, arxiv_api_url=server.url)
        for command in (["run"], ["send"]):
            result = cli(*command, ok=False)
            assert result.exit_code == 1
            assert "nothing to do: there are no topics yet" in result.output
            assert "newsletter init --examples" in result.output
        cli("topics", "add", "SLAM", "-k", "slam")
        result = cli("run", ok=False)
        assert result.exit_code == 1 and "no active subscriber follows a topic" in result.output
        assert server.requests == []
    assert "No digest yet." in cli("status").output


# ---------------------------------------------------------------- starting in a blink

HEAVY = ("sqlalchemy", "flask", "huey", "requests", "mjml", "sklearn", "pydantic", "redis")
"""What the whole program imports between its commands, and `newsletter --help` needs none of."""


def modules_after(*argv: str) -> set[str]:
    """The modules loaded once `newsletter <argv>` ran, in a fresh interpreter (a package's
    parents with it: `flask` is in it whenever `flask.app` is)."""
    code = (
        "import sys\n"
        f"sys.argv = ['newsletter', *{list(argv)!r}]\n"
        "from newsletter.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.splitlines()[-1].split())


def test_help_lists_every_command_without_importing_the_program():
    loaded = modules_after("--help")
    assert "newsletter" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_a_command_imports_its_own_module_only():
    loaded = modules_after("subscribers", "--help")
    assert not loaded & {"flask", "huey", "mjml", "sklearn", "requests"}, loaded


LIST_NEEDS_NONE_OF = (
    *("flask", "huey", "mjml", "sklearn", "requests", "redis", "alembic", "jinja2"),
    "limits",  # the API's rate limit: the settings take its default without its parser
    "yaml",  # topic files: newsletter.intake.topic_files reads them
    "pylatexenc",  # titles' LaTeX, for the reading list's table (newsletter.textfmt)
    "click",  # Flask's; Typer 0.29 carries its own (typer._click), which the CLI uses
    # SQLAlchemy's PostgreSQL dialect and its drivers: the digests' partial indexes name
    # their WHERE without it (models.PartialIndex); on SQLite nothing else needs it.
    "sqlalchemy.dialects.postgresql",
    # The store's other modules: `newsletter.store` imports each as its names are read.
    *("newsletter.store.deliveries", "newsletter.store.api_tokens", "newsletter.store.ranking"),
)
"""What the program imports elsewhere, and `subscribers list`, which starts often and should
start fast (bench/cli_bench.py), needs none of."""


@pytest.mark.parametrize("database_url", [None])
def test_listing_subscribers_imports_only_what_the_list_needs(cli, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    loaded = modules_after("subscribers", "list")
    assert {"newsletter.store.subscribers", "sqlalchemy.orm"} <= loaded  # it did list
    assert not loaded & set(LIST_NEEDS_NONE_OF), loaded & set(LIST_NEEDS_NONE_OF)


def test_the_top_level_help_says_what_each_command_says_of_itself():
    # `newsletter --help` lists the commands from newsletter.cli.COMMANDS without importing
    # them: each line must be the first paragraph of the command's own help.
    import typer

    from newsletter.cli import COMMANDS, app, load_command

    group = typer.main.get_command(app)
    assert group.list_commands(typer.Context(group)) == list(COMMANDS)
    for name, (_module, _attribute, first_paragraph) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").strip().split("\n\n")[0] == first_paragraph, name
