"""Settings: safe defaults, the environment and .env, masked secrets, the signing key."""

from __future__ import annotations

import stat
import typing

import pytest

from newsletter.cli.common import ExitStatus
from newsletter.config import MASK, Settings, get_settings, mask_url_password, read_settings
from newsletter.errors import ConfigError
from newsletter.web import create_app
from tests.arxiv_server import ArxivServer
from tests.helpers import REPO, set_env

# Settings are the same whatever the database: these run on the default (SQLite) only.
pytestmark = pytest.mark.parametrize("database_url", [None])

NO_KEY = (
    "NEWSLETTER_SECRET_KEY is not set: NEWSLETTER_ENV=production needs a key of at least 32"
    " characters (make one with `openssl rand -hex 32`)"
)
GOOD_KEY = "0123456789abcdef" * 4


def set_raw(monkeypatch, **values: str) -> None:
    """Set variables that may not make valid settings (`set_env` reads them back at once)."""
    for key, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{key.upper()}", value)
    get_settings.cache_clear()


def refused(cli, *args: str) -> list[str]:
    """A command refused for its settings: exit 3, one `Error:` line per problem, no traceback
    and none of pydantic's own text."""
    result = cli(*args, ok=False)
    assert result.exit_code == ExitStatus.CONFIG, result.output
    assert "Traceback" not in result.output and "pydantic" not in result.output
    assert "Input should be" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("Error: ")]


def test_defaults_need_nothing_configured(settings, tmp_path):
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"
    assert settings.outbox_dir == tmp_path / "var" / "outbox"
    assert settings.redis_url is None and settings.smtp_url is None
    assert settings.arxiv_api_url == "https://export.arxiv.org/api/query"
    assert settings.base_url == "http://localhost:8000"
    assert settings.from_address == "arXiv Digest <digest@localhost>"
    assert settings.list_id == "arXiv Digest <digest.localhost>"


def test_the_default_rate_limit_is_one_limits_reads(settings):
    # The settings take their default as it is, without limits' parser (see `_rate_limit`).
    from limits import parse_many

    from newsletter.config.settings import API_RATE_LIMIT

    assert settings.api_rate_limit == API_RATE_LIMIT
    assert [str(limit) for limit in parse_many(API_RATE_LIMIT)] == ["120 per 1 minute"]


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
    set_raw(monkeypatch, env="production")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is not set"):
        get_settings()
    # Made in code, the same settings are refused by what uses them.
    production = Settings(env="production")
    assert production.problems() == [NO_KEY]
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY must be set"):
        production.secret()
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is not set"):
        create_app(production)


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


def test_an_empty_value_is_unset_for_every_setting_that_may_be(settings, monkeypatch):
    optional = [
        name
        for name, field in Settings.model_fields.items()
        if type(None) in typing.get_args(field.annotation)
    ]
    assert {"inbox", "dkim_key_file", "outbox_dir", "smtp_url", "metrics_port"} <= set(optional)
    # A line left empty in a .env: never the current folder (Path("") is "."), nor "".
    for name in optional:
        monkeypatch.setenv(f"NEWSLETTER_{name.upper()}", "")

    read = set_env(monkeypatch)

    assert {name: getattr(read, name) for name in optional if name != "outbox_dir"} == {
        name: None for name in optional if name != "outbox_dir"
    }
    assert read.outbox_dir == settings.var_dir / "outbox"  # its default, as when unset


def test_bad_settings_say_which(monkeypatch, settings):
    monkeypatch.setenv("NEWSLETTER_FROM", "no address here")
    with pytest.raises(ValueError, match="NEWSLETTER_FROM"):
        Settings()


# ------------------------------------------------------------- checked before anything runs


@pytest.mark.parametrize(
    "variable, value, line",
    [
        (
            "SMTP_TIMEOUT",
            "-1",
            "NEWSLETTER_SMTP_TIMEOUT=-1: must be more than 0 (seconds for each SMTP connection"
            " and command)",
        ),
        (
            "SEND_BATCH_SIZE",
            "0",
            "NEWSLETTER_SEND_BATCH_SIZE=0: must be at least 1 (messages handed to one SMTP"
            " connection at a time)",
        ),
        (
            "BASE_URL",
            "digest.example.org",
            "NEWSLETTER_BASE_URL=digest.example.org: must start with https:// (or http://) and"
            " name a host, like https://digest.example.org: every link in every email starts"
            " with it",
        ),
        # Even an empty one: `…/#` + "/unsubscribe/…" is a fragment, not a page.
        (
            "BASE_URL",
            "https://digest.example.org/#",
            "NEWSLETTER_BASE_URL=https://digest.example.org/#: must not have a ?query or"
            " #fragment: link paths are appended to it",
        ),
        (
            "BASE_URL",
            "https://digest.example.org/?",
            "NEWSLETTER_BASE_URL=https://digest.example.org/?: must not have a ?query or"
            " #fragment: link paths are appended to it",
        ),
        (
            "ARXIV_API_URL",
            "ftp://export.arxiv.org/api/query",
            "NEWSLETTER_ARXIV_API_URL=ftp://export.arxiv.org/api/query: must start with http://"
            " or https:// and name a host, like https://example.org",
        ),
        (
            "SEND_RATE",
            "fast",
            "NEWSLETTER_SEND_RATE=fast: must be a number (messages per second across every worker)",
        ),
        (
            "ENV",
            "staging",
            "NEWSLETTER_ENV=staging: must be development or production (how careful to be)",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable_and_exit_3(
    cli, monkeypatch, variable, value, line
):
    set_raw(monkeypatch, **{variable: value})

    for command in (["run"], ["topics", "list"], ["config"]):
        assert refused(cli, *command) == [f"Error: {line}"]


def test_every_number_has_a_floor(settings, monkeypatch):
    numbers = [
        name
        for name, field in Settings.model_fields.items()
        if {int, float} & set(typing.get_args(field.annotation) or [field.annotation])
    ]
    assert {"smtp_timeout", "send_batch_size", "send_rate", "arxiv_page_size"} <= set(numbers)
    for name in numbers:
        monkeypatch.setenv(f"NEWSLETTER_{name.upper()}", "-1")

    errors = read_settings().errors

    assert sorted(line.split("=", 1)[0] for line in errors) == sorted(
        f"NEWSLETTER_{name.upper()}" for name in numbers
    )
    assert all(line.split(": ", 1)[1].startswith("must be") for line in errors), errors


def test_config_shows_every_problem_at_once(cli, monkeypatch):
    set_raw(
        monkeypatch,
        smtp_timeout="-1",
        send_batch_size="0",
        base_url="digest.example.org",
        env="production",
        secret_key="short",
    )

    result = cli("config", ok=False)

    assert result.exit_code == ExitStatus.CONFIG
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert [line.split("=", 1)[0] for line in errors] == [
        "Error: NEWSLETTER_SMTP_TIMEOUT",
        "Error: NEWSLETTER_BASE_URL",
        "Error: NEWSLETTER_SEND_BATCH_SIZE",
        "Error: NEWSLETTER_SECRET_KEY",
    ]
    # The table still shows every setting, the bad ones as they were read.
    assert "NEWSLETTER_SMTP_TIMEOUT=-1\n" in result.stdout
    assert "NEWSLETTER_ARXIV_DELAY=0.0\n" in result.stdout
    assert "short" not in result.output


def test_a_short_secret_key_is_refused_in_production(cli, monkeypatch):
    set_raw(monkeypatch, env="production", secret_key="k")

    assert refused(cli, "run") == [
        "Error: NEWSLETTER_SECRET_KEY=********: is 1 character long; NEWSLETTER_ENV=production"
        " needs at least 32 (make one with `openssl rand -hex 32`)"
    ]
    set_raw(monkeypatch, secret_key=GOOD_KEY)
    assert "NEWSLETTER_SECRET_KEY=********" in cli("config").output


def test_the_example_env_file_s_key_is_no_key(cli, monkeypatch, tmp_path):
    # The shipped example must not start as it is; nor may a placeholder long enough to pass.
    example = REPO / "deploy" / "systemd" / "newsletter.env.example"
    lines = example.read_text(encoding="utf-8").splitlines()
    key_line = next(line for line in lines if line.startswith("NEWSLETTER_SECRET_KEY="))
    assert key_line == "NEWSLETTER_SECRET_KEY="
    assert lines[lines.index(key_line) - 1] == "# openssl rand -hex 32"

    set_raw(monkeypatch, env="production", secret_key="change-me-to-64-random-characters-please")
    assert refused(cli, "run") == [
        "Error: NEWSLETTER_SECRET_KEY=********: is a placeholder (it starts with 'change-me'),"
        " which anyone could sign links with (make one with `openssl rand -hex 32`)"
    ]


def test_an_upper_case_scheme_is_read_in_lower_case(settings, monkeypatch):
    # HSTS, secure cookies and the production check look for "https://".
    read = set_env(
        monkeypatch,
        base_url="HTTPS://Digest.example.org/",
        env="production",
        secret_key=GOOD_KEY,
        smtp_url="smtp://relay.example.org",
    )

    assert read.base_url == "https://Digest.example.org"
    assert read.check_production() == []
    response = create_app(read).test_client().get("/healthz")
    assert response.status_code == 200 and "Strict-Transport-Security" in response.headers


def test_production_without_a_key_refuses_to_start_before_asking_arxiv(
    cli, monkeypatch, example_topics
):
    with ArxivServer() as arxiv:
        set_raw(monkeypatch, env="production", arxiv_api_url=arxiv.url)

        for command in (["run"], ["run", "--inline"], ["fetch"], ["send"], ["worker"], ["serve"]):
            assert refused(cli, *command) == [f"Error: {NO_KEY}"], command

        assert arxiv.requests == []  # refused before the first request, not after


def test_a_misspelt_setting_is_a_warning_with_the_name_meant(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSLETTER_DAILYTIME", "07:30")
    (tmp_path / ".env").write_text("NEWSLETTER_SMTP_TIMOUT=10\nNEWSLETTER_XYZZY=1\n")
    monkeypatch.setenv("NEWSLETTER_TEST_WHATEVER", "the test suite's own: never reported")

    result = cli("topics", "list")  # warned, and still done

    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        "Warning: NEWSLETTER_DAILYTIME (in the environment) is not a setting, so it changes"
        " nothing; did you mean NEWSLETTER_DAILY_TIME?",
        "Warning: NEWSLETTER_SMTP_TIMOUT (in .env) is not a setting, so it changes nothing;"
        " did you mean NEWSLETTER_SMTP_TIMEOUT?",
        "Warning: NEWSLETTER_XYZZY (in .env) is not a setting, so it changes nothing",
    ]
    assert "NEWSLETTER_DAILY_TIME=06:00" in cli("config").output  # indeed nothing changed


def test_an_env_file_that_is_not_utf8_is_one_line_naming_it(cli, monkeypatch, tmp_path):
    # Latin-1, as an editor on another system may save it; the secret must not be quoted.
    (tmp_path / ".env").write_bytes(
        b"NEWSLETTER_SMTP_TIMEOUT=10\nNEWSLETTER_SECRET_KEY=cl\xe9-secr\xe8te-assez-longue\n"
    )
    set_raw(monkeypatch, send_rate="5")
    line = "Error: .env: line 2 is not UTF-8 text (byte 0xe9): save the file as UTF-8"

    for command in (["topics", "list"], ["config"]):
        assert refused(cli, *command) == [line], command
    shown = cli("config", ok=False).stdout
    assert "NEWSLETTER_SEND_RATE=5.0\n" in shown  # the environment is still read and shown
    assert "secr" not in cli("config", ok=False).output


SMTP_EXAMPLE = "like smtp://user:pass@host:587 or smtps://user:pass@host:465"
PERCENT_ENCODE = (
    "has a password the URL cannot hold as it is: percent-encode / # ? @ : in it"
    " (%2F %23 %3F %40 %3A)"
)


@pytest.mark.parametrize(
    "variable, value, shown, error",
    [
        # SQLAlchemy reads this password whole: it works, and is masked whole.
        (
            "DATABASE_URL",
            "postgresql://app:Se/cr3t@db.example.org/app",
            "postgresql+psycopg://app:********@db.example.org/app",
            None,
        ),
        # SQLAlchemy ends a password at its first "@", and would take "ss9cr3t@db…" for a host.
        (
            "DATABASE_URL",
            "postgresql://app:Pa@ss9cr3t@db.example.org/app",
            "postgresql://app:********@db.example.org/app",
            PERCENT_ENCODE,
        ),
        # SQLAlchemy's own words here were "invalid literal for int() … 'Word1cr3t@h0st'".
        (
            "DATABASE_URL",
            "postgresql://app:Pa@db:Word1cr3t@h0st/app",
            "postgresql://app:********@h0st/app",
            f"has a port that is no number, or {PERCENT_ENCODE}",
        ),
        # urlsplit ends the host part at / ? #: the rest was "a port that is no number".
        (
            "SMTP_URL",
            "smtp://user:Se/cr3t@relay.example.org:587",
            "smtp://user:********@relay.example.org:587",
            f"{PERCENT_ENCODE}, {SMTP_EXAMPLE}",
        ),
        (
            "SMTP_URL",
            "smtp://user:Se#cr3t@relay.example.org",
            "smtp://user:********@relay.example.org",
            f"{PERCENT_ENCODE}, {SMTP_EXAMPLE}",
        ),
        # redis-py's words here were "Port could not be cast to integer value as 'Se'".
        (
            "REDIS_URL",
            "redis://:Se?cr3t@127.0.0.1:6379/0",
            "redis://:********@127.0.0.1:6379/0",
            f"{PERCENT_ENCODE} (like redis://127.0.0.1:6379/0)",
        ),
        # No URL at all (the password pasted by mistake, a slash left out): masked whole.
        (
            "SMTP_URL",
            "Sup3rS3cr3t!",
            "********",
            f"must start with smtp:// or smtps:// and name a host, {SMTP_EXAMPLE}",
        ),
        (
            "SMTP_URL",
            "smtp:/user:Se3cr3t@relay.example.org",
            "********",
            f"must start with smtp:// or smtps:// and name a host, {SMTP_EXAMPLE}",
        ),
        (
            "REDIS_URL",
            "Plainwordcr3t",  # as much a host name as a password: not shown
            "********",
            "must start with redis://, rediss:// or unix://, like redis://127.0.0.1:6379/0",
        ),
        (
            "DATABASE_URL",
            "Sup3rS3cr3t!",
            "********",
            "is not a database URL: use SQLite (sqlite:///path/to/file.db) and PostgreSQL"
            " (postgresql://…)",
        ),
        # A key in a translator's address, shown by `config` as the logs show it.
        (
            "TRANSLATOR_URL",
            "https://translate.example.org/v1?api_key=Tr4nsl8cr3t&model=x",
            "https://translate.example.org/v1?api_key=********&model=x",
            None,
        ),
    ],
)
def test_a_password_is_never_shown_whatever_it_holds(
    cli, monkeypatch, variable, value, shown, error
):
    set_raw(monkeypatch, **{variable: value})

    result = cli("config", ok=error is None)

    assert "cr3t" not in result.output
    assert f"NEWSLETTER_{variable}={shown}\n" in result.stdout
    if error is not None:
        assert refused(cli, "topics", "list") == [f"Error: NEWSLETTER_{variable}={shown}: {error}"]


def test_a_password_is_masked_wherever_the_parser_used_reads_it(settings):
    from sqlalchemy.engine import make_url

    from newsletter.config import shown

    for url in (
        "postgresql+psycopg://app:Se/cr3t@db/app",
        "postgresql+psycopg://a?b:Se#cr3t@db/app",
        "postgresql+psycopg://app:Pa@ss@db/app",
    ):
        password = make_url(url).password
        assert password and password not in shown("database_url", url).replace(MASK, "")


def test_the_urls_we_check_are_the_urls_we_mask(settings):
    assert mask_url_password("smtp://u:p@mail.example.org:587") == (
        "smtp://u:********@mail.example.org:587"
    )
    assert mask_url_password("me:hunter2@mail.example.org:587") == (
        "me:********@mail.example.org:587"
    )
    assert mask_url_password("unix:///run/redis.sock?db=2&password=s3cret") == (
        "unix:///run/redis.sock?db=2&password=********"
    )
    assert mask_url_password("postgresql://digest:p%40ss@db.example.org/newsletter") == (
        "postgresql://digest:********@db.example.org/newsletter"
    )
    # Nothing but the password changes: not a letter of the user, host or path.
    assert mask_url_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url_password("smtp://p:p@p.example.org") == "smtp://p:********@p.example.org"


def test_each_setting_is_described_by_its_docstring_read_only_when_asked(settings):
    # The end of a setting's error message (see the ENV=staging case above). Pydantic's
    # use_attribute_docstrings would read and tokenize the class's source at every start.
    from newsletter.config.settings import description

    assert not Settings.model_config.get("use_attribute_docstrings")
    assert all(description(name) for name in Settings.model_fields)
    assert description("redis_url") == (
        "The Redis of the queue, which every worker shares; unset: a SQLite file in the var\n"
        "folder."
    )
    assert description("no_such_setting") == ""
