"""Settings: safe defaults, the environment and .env, masked secrets, the signing key."""

from __future__ import annotations

import stat

import pytest

from newsletter.config import Settings
from newsletter.errors import ConfigError
from tests.conftest import set_env

# Settings are the same whatever the database: these run on the default (SQLite) only.
pytestmark = pytest.mark.parametrize("database_url", [None])


def test_defaults_need_nothing_configured(settings, tmp_path):
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"
    assert settings.outbox_dir == tmp_path / "var" / "outbox"
    assert settings.redis_url is None and settings.smtp_url is None
    assert settings.arxiv_api_url == "https://export.arxiv.org/api/query"
    assert settings.base_url == "http://localhost:8000"
    assert settings.from_address == "arXiv Digest <digest@localhost>"
    assert settings.list_id == "arXiv Digest <digest.localhost>"


def test_dotenv_is_read(settings, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NEWSLETTER_BASE_URL=https://digest.example.org/\n")
    settings = set_env(monkeypatch)
    assert settings.base_url == "https://digest.example.org"


def test_secret_key_is_made_once_and_kept_private(settings):
    first = settings.secret()
    assert len(first) >= 40 and settings.secret() == first
    key_file = settings.var_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_production_needs_an_explicit_secret(settings, monkeypatch):
    production = set_env(monkeypatch, env="production")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY must be set"):
        production.secret()
    assert "NEWSLETTER_SECRET_KEY is not set" in production.check_production()


def test_config_command_masks_secrets(cli, monkeypatch):
    set_env(
        monkeypatch,
        smtp_url="smtps://mailer:hunter2-secret@smtp.example.org:465",
        secret_key="very-secret-signing-key",
        redis_url="redis://:redispass@127.0.0.1:6379/0",
    )
    output = cli("config").output
    assert "hunter2-secret" not in output and "very-secret-signing-key" not in output
    assert "redispass" not in output
    assert "NEWSLETTER_SMTP_URL=smtps://mailer:********@smtp.example.org:465" in output
    assert "NEWSLETTER_SECRET_KEY=********" in output
    assert "NEWSLETTER_ARXIV_DELAY=0.0" in output  # the tests' own setting, read from the env


def test_bad_settings_say_which(monkeypatch, settings):
    monkeypatch.setenv("NEWSLETTER_FROM", "no address here")
    with pytest.raises(ValueError, match="NEWSLETTER_FROM"):
        Settings()
