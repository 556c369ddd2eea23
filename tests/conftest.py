"""Shared fixtures: an isolated var folder per test, the CLI runner, and the real local servers.

Every test gets its own SQLite database, outbox and signing key under a temporary folder, and
runs with no NEWSLETTER_* variable of the surrounding shell, so results never depend on the
machine the suite runs on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSLETTER_ARXIV_DELAY", "0")
    monkeypatch.setenv("NEWSLETTER_ARXIV_RETRIES", "1")
    monkeypatch.setenv("NEWSLETTER_ARXIV_TIMEOUT", "5")
    monkeypatch.setenv("NEWSLETTER_SMTP_TIMEOUT", "5")
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
