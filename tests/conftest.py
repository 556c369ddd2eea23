"""Shared fixtures: an isolated var folder per test, the CLI runner, and the real local servers.

Every test gets its own SQLite database, outbox and signing key under a temporary folder, and
runs with no NEWSLETTER_* variable of the surrounding shell, so results never depend on the
machine the suite runs on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from newsletter import db
from newsletter.cli import app
from newsletter.config import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]


POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = os.environ.get("NEWSLETTER_TEST_BACKENDS", "sqlite,postgresql").split(",")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    plain_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI and is not reachable at {plain_url}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {plain_url} ({error}); CI=1 makes this fail")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        db.engine_for(url).dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


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


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    """Change settings for the rest of a test, the way a user would: through the environment."""
    for key, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{key.upper()}", value)
    get_settings.cache_clear()
    return get_settings()


class Cli:
    """Runs `newsletter …` in-process, as a user would type it."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None):
        result = self.runner.invoke(app, list(args), input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"newsletter {' '.join(args)} failed:\n{result.output}"
        return result


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli()


@pytest.fixture
def example_topics(cli: Cli) -> None:
    cli("topics", "import", str(REPO / "subscribers" / "topics.toml"))


REDIS_URL = os.environ.get("NEWSLETTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
"""A database of the local Redis that nothing but these tests uses (they empty it); runs that
share a machine at the same time should each set NEWSLETTER_TEST_REDIS_URL to their own."""


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        reason = f"Redis is not reachable at {REDIS_URL} ({error}): start redis-server"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the Redis test must run)")
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


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
SCREENSHOTS = REPO / "var" / "screenshots"
"""Where browser tests write their screenshots (not committed), for a person to look at."""


def missing_tool(reason: str) -> None:
    """Skip, saying why, where a tool the test needs is absent; fail instead in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (needed in CI: .ci/run installs it)")
    pytest.skip(f"{reason}; CI=1 makes this fail")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_tool("playwright is not installed (pip install '.[test]')")
    if not CHROMIUM.exists():
        missing_tool(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
