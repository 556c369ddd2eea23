"""Shared fixtures: an isolated var folder per test, the CLI runner, and the real local servers.
Plain helpers the test modules share (no fixtures) are in helpers.py.

Every test gets its own SQLite database, outbox and signing key under a temporary folder, and
runs with no NEWSLETTER_* variable of the surrounding shell, so results never depend on the
machine the suite runs on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# The helpers' asserts explain themselves on failure, as those of a test module do.
pytest.register_assert_rewrite("tests.helpers")

from newsletter.config import Settings, get_settings  # noqa: E402
from tests.arxiv_server import ArxivServer, Reply  # noqa: E402
from tests.atom import feed  # noqa: E402
from tests.helpers import (  # noqa: E402
    PAPERS,
    REDIS_URL,
    REPO,
    Cli,
    paper,
    postgres_schema,
    query_of,
    set_env,
    skip_or_fail_in_ci,
    store_papers,
    subscribe,
)

BACKENDS = os.environ.get("NEWSLETTER_TEST_BACKENDS", "sqlite,postgresql").split(",")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "queued_confirmations: the web app queues confirmations for a real worker"
    )


@pytest.fixture(autouse=True)
def confirmations_at_once(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The web app queues each opt-in's confirmation for a worker (`optin.to_worker`); in tests
    the app under the test client sends it when queued, through the same `send_claimed` the
    worker's task runs, so a test reads the mail after the request. Tests marked
    `queued_confirmations` keep the real queue (and run a worker, or `newsletter serve`)."""
    if request.node.get_closest_marker("queued_confirmations") is not None:
        return
    from newsletter.delivery.confirmations import send_claimed
    from newsletter.web import optin

    monkeypatch.setattr(optin, "to_worker", lambda job: send_claimed(get_settings(), job))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Every test that uses the database runs once per backend: SQLite, then PostgreSQL.

    None means the default: a SQLite file in the test's own var folder.
    """
    if request.param == "postgresql":
        with postgres_schema() as url:
            yield url
    else:
        yield None


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> Iterator[Settings]:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_") and not name.startswith("NEWSLETTER_TEST_"):
            monkeypatch.delenv(name)
    if database_url is not None:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_ARXIV_DELAY", "0")
    monkeypatch.setenv("NEWSLETTER_ARXIV_RETRIES", "1")
    monkeypatch.setenv("NEWSLETTER_ARXIV_TIMEOUT", "5")
    monkeypatch.setenv("NEWSLETTER_SMTP_TIMEOUT", "5")
    # Nothing leaves the machine: tests that ask Hugging Face point it at a local server.
    monkeypatch.setenv("NEWSLETTER_HF_CODE_LINKS", "false")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli()


@pytest.fixture
def example_topics(cli: Cli) -> None:
    cli("topics", "import", str(REPO / "subscribers" / "topics.toml"))


@pytest.fixture
def two_subscribers(cli: Cli, settings: Settings, example_topics: None) -> Settings:
    """Ada and Bo follow SLAM, which has two papers not sent yet; the settings."""
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, "bo@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1), paper(2))
    return settings


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        skip_or_fail_in_ci(f"Redis is not reachable at {REDIS_URL} ({error}): start redis-server")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def arxiv(cli: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArxivServer]:
    """A local arXiv with two topics' papers, and two subscribers whose mail goes to the outbox.
    (test_fetch and test_end_to_end have an `arxiv` of their own.)"""
    with ArxivServer() as server:
        set_env(
            monkeypatch,
            arxiv_api_url=server.url,
            arxiv_backoff="0.01",
            outbox_dir=str(settings.var_dir.parent / "outbox"),
        )
        for name, entries in PAPERS.items():
            cli("topics", "add", name, "--keyword", name.lower())
            server.route(Reply(body=feed(entries)), search_query=query_of(name))
        cli("subscribers", "add", "ada@example.org", "-t", "Alpha", "-t", "Beta")
        cli("subscribers", "add", "bo@example.org", "-t", "Beta")
        yield server


# ---------------------------------------------------------------- a real browser

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium, driven by Playwright: never a browser a test tool downloads."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail_in_ci("playwright is not installed (pip install '.[test]')")
    if not CHROMIUM.exists():
        skip_or_fail_in_ci(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
