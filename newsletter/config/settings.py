"""The `Settings` model: every NEWSLETTER_* setting, its default, and its checks.

Every setting has a safe default so that nothing needs configuring to try the service; the
README lists them all (a test checks that it does). Each value is checked as it is read, and
what makes values unusable together is `Settings.problems` (reading them, and saying all that
is wrong in words: `newsletter.config.checks`). Messages name a setting by its variable, its
value printed with no secret in it (`shown_setting`).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import secrets
import textwrap
from datetime import date, datetime, time
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.config.urls import (
    MASK,
    ascii_domain,
    check_redis_url,
    check_smtp_url,
    check_web_url,
    checked_database_url,
    has_host,
    lower_case_scheme,
    mask_url_password,
)
from newsletter.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)
PREFIX = "NEWSLETTER_"
ENV_FILE = ".env"
MIN_SECRET_LENGTH = 32
"""Characters a production signing key needs at least (`openssl rand -hex 32` makes 64)."""
PLACEHOLDER_KEY = "change-me"
"""How the placeholder of an example's signing key starts: refused in production."""
API_RATE_LIMIT = "120/minute"
"""The default of NEWSLETTER_API_RATE_LIMIT (tests/test_config.py checks that limits reads it)."""
URL_SECRETS = ("redis_url", "smtp_url")
"""Secrets that are URLs: shown with only their password masked (the rest is needed to tell
what is wrong); every other secret is masked whole."""


class Settings(BaseSettings):
    """The effective configuration of one process."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",  # whatever the locale: `env_file_problem` checks it is
        extra="ignore",
        populate_by_name=True,
        # Each field's docstring is its description (`description`), read when an error
        # message needs it: pydantic's use_attribute_docstrings would read the class's source
        # at every start of every command (about 20 ms of CPU).
    )

    env: Literal["development", "production"] = "development"
    """How careful to be; production needs NEWSLETTER_SECRET_KEY, never migrates on the fly."""
    var_dir: Path = Path("./var")
    """The folder of the embedded defaults: database, queue, outbox, signing key, previews."""
    database_url: str = ""
    """A SQLite or PostgreSQL URL; empty: a SQLite file in NEWSLETTER_VAR_DIR."""
    redis_url: SecretStr | None = None
    """The Redis of the queue, which every worker shares; unset: a SQLite file in the var
    folder."""
    smtp_url: SecretStr | None = None
    """The mail relay; unset: .eml files in the outbox."""
    smtp_timeout: float = Field(30.0, gt=0)
    """Seconds for each SMTP connection and command."""
    smtp_pipelining: bool = True
    """Send each message's MAIL, RCPT and DATA together (RFC 2920) when the relay offers
    PIPELINING; false: one command at a time, each waiting for its reply."""
    smtp_max_attempts: int = Field(5, ge=1)
    """Tries for a message the server refuses for now, before it counts as failed."""
    smtp_retry_backoff: float = Field(30.0, ge=0)
    """Seconds before the first retry of such a message; doubled for each further one."""
    channel_timeout: float = Field(10.0, gt=0)
    """Seconds for each request to a chat platform (Slack, Discord, Matrix, Feishu)."""
    channel_tries: int = Field(3, ge=1)
    """Tries of one post a platform refuses for now (429, 5xx, no answer) before the delivery
    is deferred."""
    channel_backoff: float = Field(1.0, ge=0)
    """Seconds before the second try of such a post (when the platform names no wait);
    doubled for each further one."""
    channel_max_wait: float = Field(60.0, ge=0)
    """The longest wait a platform may ask for (429 Retry-After) that is waited in place; a
    longer one defers the delivery to then."""
    delivery_lease: float = Field(600.0, gt=0)
    """Seconds a worker holds the deliveries it claimed."""
    record_every: int = Field(250, ge=1)
    """Successful sends written to the database together, one UPDATE. Each is also noted at once
    in the send journal (`delivery.journal`), so a sending thread that dies sends again at most its
    one message in flight; without the journal (a crashed machine) up to this many."""
    record_interval: float = Field(1.0, gt=0)
    """Seconds after which sends are written even if fewer than `record_every`."""
    webhook_timeout: float = Field(10.0, gt=0)
    """Seconds one attempt to post a webhook waits for its endpoint (to connect, and for each
    read); a slower endpoint is retried later."""
    webhook_max_attempts: int = Field(10, ge=1)
    """Attempts to post one webhook delivery before it counts as failed."""
    webhook_retry_backoff: float = Field(30.0, ge=0)
    """Seconds before a webhook delivery's first retry; doubled for each further one (an
    endpoint's longer Retry-After is honoured, up to an hour)."""
    webhook_send_budget: float = Field(30.0, ge=0)
    """Seconds `newsletter send` and `newsletter run` spend posting due webhooks once their
    mail is out, plus one attempt's timeout (0: leave them to the worker)."""
    heartbeat_interval: float = Field(10.0, gt=0)
    """Seconds between a worker's heartbeats; it counts as alive for three of them."""
    recovery_interval: float = Field(60.0, ge=1)
    """The longest wait between tries while Redis, the database or the SMTP relay is down
    (1 s, 2 s, 4 s … up to this), and how often the worker that runs the schedule looks for
    deliveries no task is working on."""
    dkim_key_file: Path | None = None
    """A PEM RSA private key that DKIM-signs every message; unset: no signature."""
    dkim_selector: str = "digest"
    """The DKIM selector: the public key is published at <selector>._domainkey.<domain>."""
    dkim_domain: str = ""
    """The DKIM signing domain; empty: the domain of NEWSLETTER_FROM."""
    outbox_dir: Path | None = None
    """Where messages go as .eml files when no SMTP URL is set."""
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    """arXiv's API, a mirror or a local server."""
    arxiv_delay: float = Field(3.0, ge=0)
    """Seconds between arXiv requests (arXiv asks for 3)."""
    arxiv_timeout: float = Field(30.0, gt=0)
    """Seconds before an arXiv request is given up."""
    arxiv_retries: int = Field(3, ge=0)
    """Further tries of a failing arXiv request."""
    arxiv_backoff: float = Field(1.0, ge=0)
    """Seconds: the base of the exponential wait between those tries."""
    arxiv_page_size: int = Field(100, ge=1, le=2000)
    """Papers per arXiv request (arXiv gives at most 2000)."""
    fetch_max_per_topic: int = Field(100, ge=1)
    """Most papers fetched per topic and run."""
    hf_code_links: bool = True
    """Ask the Hugging Face papers API for the code of papers whose text links none."""
    hf_api_url: str = "https://huggingface.co"
    """Where the Hugging Face papers API lives."""
    hf_timeout: float = Field(10.0, gt=0)
    """Seconds before a Hugging Face request is given up."""
    code_recheck_days: int = Field(7, ge=0)
    """Papers still without code are asked about again daily for this many days."""
    code_news_days: int = Field(30, ge=0)
    """A reader's digest lists the papers sent to them within this many days whose code was
    found since their previous digest ("Code released since"); 0: never."""
    base_url: str = "http://localhost:8000"
    """The public address of the web app, which every link in every email starts with."""
    secret_key: SecretStr | None = None
    """The key that signs the links in emails; unset: one generated into the var folder."""
    from_address: str = Field("arXiv Digest <digest@localhost>", alias="NEWSLETTER_FROM")
    """The sender of every email; its domain also ends Message-IDs."""
    list_id: str = ""
    """The List-Id header; empty: made from NEWSLETTER_FROM."""
    digest_max_per_topic: int = Field(10, ge=1)
    """Papers shown per topic in an email."""
    send_empty: bool = False
    """Also mail subscribers whose topics have nothing new."""
    daily_time: str = "06:00"
    """The time of day of the daily job, in NEWSLETTER_TIMEZONE."""
    timezone: str = "UTC"
    """The time zone of the daily time and of "today"."""
    send_days: str = "mon,tue,wed,thu,fri"
    """The days the daily job runs."""
    send_rate: float = Field(0.0, ge=0)
    """Messages per second across every worker; 0: unlimited."""
    # Between two batches a connection waits (the outcomes written, the next rows claimed and
    # read): 2,000 sent 3-4% more a second than 500 in the workers bench (README,
    # Performance); a worker that dies holds a batch's unsent rows until its lease ends.
    send_batch_size: int = Field(2000, ge=1)
    """Messages handed to one SMTP connection at a time."""
    serve_part_size: int = Field(100_000, ge=1)
    """Readers a worker's share of writing the daily digest's delivery rows covers (by
    subscriber id): the shares are tasks any worker takes. Writing rows is mostly the
    database's work: where it shares the workers' cores, two writers at once only share its
    time while nobody sends, so a list this size is written by the builder alone while the
    other workers send."""
    check_deliverability: bool = False
    """Also check that an address's domain receives mail (a DNS lookup)."""
    default_language: str = "en"
    """The language of subscribers added without one."""
    translator: Literal["none", "google", "openai", "deepl", "libretranslate"] = "none"
    """Which translator translates abstracts."""
    translator_url: str = ""
    """The translator's base address; empty: the provider's usual one (see
    `newsletter.translate.DEFAULT_URLS`)."""
    translator_key: SecretStr | None = None
    """The translator's API key."""
    translator_model: str = "gpt-4o-mini"
    """The model an OpenAI-compatible translator uses."""
    translator_timeout: float = Field(30.0, gt=0)
    """Seconds before a translation request is given up."""
    translator_retries: int = Field(3, ge=0)
    """Further tries of a translation request that got 429, 5xx or no answer."""
    translator_backoff: float = Field(1.0, ge=0)
    """Seconds: the base of the exponential wait between those tries."""
    translator_budget: float = Field(300.0, ge=0)
    """Seconds a digest may spend on translation, retries included; then originals go out."""
    translator_batch_size: int = Field(8, ge=1, le=50)
    """Texts per translation request where the API takes several."""
    translate_titles: bool = False
    """Also translate titles."""
    summarizer: Literal["none", "openai"] = "none"
    """Which model writes each shown paper's one-sentence summary in the reader's language."""
    summarizer_url: str = ""
    """The summarizer's base address; empty: NEWSLETTER_TRANSLATOR_URL when the translator is
    OpenAI-compatible too, else OpenAI's."""
    summarizer_key: SecretStr | None = None
    """The summarizer's API key; unset: NEWSLETTER_TRANSLATOR_KEY when the translator is
    OpenAI-compatible too."""
    summarizer_model: str = ""
    """The model that summarizes; empty: NEWSLETTER_TRANSLATOR_MODEL."""
    summarizer_budget: float = Field(60.0, ge=0)
    """Seconds a digest may spend on summaries, retries included; then it goes out without the
    ones not made."""
    ranking: bool = True
    """Order each reader's papers within a section by their own model (what they saved, liked,
    disliked and seeded); off, every reader gets newest first."""
    ranking_min_signal: int = Field(3, ge=1)
    """Papers a reader must have saved, liked or seeded before their digest is ranked."""
    follow_batch: int = Field(25, ge=1, le=200)
    """Followed authors asked of arXiv in one request (their `au:` terms joined by OR)."""
    confirm_window: float = Field(900.0, ge=0)
    """Seconds after a confirmation email during which another request for the address sends
    none (no mail-bombing through the subscribe form)."""
    confirm_max_age: float = Field(172_800.0, gt=0)
    """Seconds a confirmation link stays valid (two days)."""
    inbox: Path | None = None
    """A mailbox (mbox, Maildir or .eml) of mail to NEWSLETTER_FROM that the worker reads for
    bounce reports and unsubscribe requests; unset: only the `import` commands read mail."""
    inbox_interval: int = Field(10, ge=1, le=1440)
    """Minutes between the worker's reads of NEWSLETTER_INBOX."""
    admin_token: SecretStr | None = None
    """Opens the admin pages (`Authorization: Bearer …` or `?token=`); unset: no token works."""
    admin_localhost: bool = True
    """Admin pages open without a token to requests from 127.0.0.0/8 and ::1 that no proxy
    forwarded; turn off when a proxy on the same machine forwards without saying so."""
    log_format: Literal["text", "json"] = "text"
    """How the worker, `newsletter serve` and gunicorn write logs: one line per event, as text
    or as a JSON object (for log shippers); see `newsletter.logs`."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """The least severe log lines written."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """The port on which `newsletter worker` answers Prometheus scrapes; unset: it does not."""
    metrics_host: str = "127.0.0.1"
    """The address the worker's metrics endpoint listens on (all: 0.0.0.0)."""
    daily_grace_hours: float = Field(6.0, gt=0)
    """Hours after NEWSLETTER_DAILY_TIME by which the day's digest must be delivered; later,
    /readyz says the daily job is stale."""
    api_rate_limit: str = API_RATE_LIMIT
    """Requests each API token may make, in Flask-Limiter's notation (`1000/hour;50/second`);
    counted in Redis when NEWSLETTER_REDIS_URL is set, else in each web process."""

    @field_validator("api_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value == API_RATE_LIMIT:
            # Every command reads the settings, and importing limits would cost each ~15 ms of
            # CPU (its storage backends, asyncio): only a value an operator chose is parsed.
            return value
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as error:
            raise ValueError(
                "must be a rate such as 120/minute, or several joined by ; (1000/hour;50/second)"
            ) from error
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object, info: ValidationInfo) -> object:
        # `NEWSLETTER_SMTP_URL=` (a line left empty in a .env) means "none", as no line does,
        # for every setting that may be unset: never an empty signing key, a relay at "", nor
        # the current folder for NEWSLETTER_INBOX (Path("") is ".").
        optional = type(None) in get_args(cls.model_fields[info.field_name].annotation)
        return None if optional and isinstance(value, str) and not value.strip() else value

    @field_validator("base_url", "arxiv_api_url", "translator_url", "summarizer_url", "hf_api_url")
    @classmethod
    def _web_address(cls, value: str, info: ValidationInfo) -> str:
        value = lower_case_scheme(value.strip()).rstrip("/")
        if info.field_name in ("translator_url", "summarizer_url") and not value:
            return value  # the provider's usual address
        check_web_url(value, links=info.field_name == "base_url")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_address(cls, value: str) -> str:
        return checked_database_url(value.strip()) if value.strip() else ""

    @field_validator("redis_url")
    @classmethod
    def _redis_address(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = lower_case_scheme(value.get_secret_value().strip())
        check_redis_url(url)
        return SecretStr(url)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_address(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = lower_case_scheme(value.get_secret_value().strip())
        check_smtp_url(url)
        return SecretStr(url)

    @field_validator("dkim_selector")
    @classmethod
    def _valid_selector(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", value.strip()):
            raise ValueError("must be a DNS name part of letters, digits, '-', '_' and '.'")
        return value.strip()

    @field_validator("daily_time")
    @classmethod
    def _valid_time(cls, value: str) -> str:
        try:
            return time.fromisoformat(value.strip()).strftime("%H:%M")
        except ValueError as error:
            raise ValueError("NEWSLETTER_DAILY_TIME must be HH:MM, like 06:00") from error

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                "NEWSLETTER_TIMEZONE: unknown time zone (a name like UTC or Europe/Berlin)"
            ) from error
        return value.strip()

    @field_validator("send_days")
    @classmethod
    def _valid_days(cls, value: str) -> str:
        days = [day.strip().lower()[:3] for day in value.split(",") if day.strip()]
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown:
            raise ValueError(f"NEWSLETTER_SEND_DAYS: {unknown} are not days (mon … sun)")
        if not days:
            raise ValueError("names no day: the daily job would never run (mon … sun)")
        return ",".join(days)

    @field_validator("translator", "summarizer", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("from_address")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "@" not in address:
            raise ValueError("NEWSLETTER_FROM needs an address with a domain")
        try:
            ascii_domain(address.rpartition("@")[2])
        except ValueError as error:
            raise ValueError(f"NEWSLETTER_FROM: its domain has no IDNA form ({error})") from None
        return value

    @model_validator(mode="after")
    def _fill_derived_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'newsletter.db'}"
        if self.outbox_dir is None:
            self.outbox_dir = self.var_dir / "outbox"
        if not self.list_id:
            self.list_id = f"{self.sender_name} <digest.{self.sender_domain}>"
        return self

    def problems(self) -> list[str]:
        """What makes these settings unusable together, one line each (each value alone is
        checked as it is read)."""
        problems = []
        if self.env == "production":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            make_one = "make one with `openssl rand -hex 32`"
            if not key:
                problems.append(
                    "NEWSLETTER_SECRET_KEY is not set: NEWSLETTER_ENV=production needs a key of"
                    f" at least {MIN_SECRET_LENGTH} characters ({make_one})"
                )
            elif len(key) < MIN_SECRET_LENGTH:
                length = f"{len(key)} character{'s' * (len(key) > 1)}"
                problems.append(
                    f"NEWSLETTER_SECRET_KEY={MASK}: is {length} long; NEWSLETTER_ENV=production"
                    f" needs at least {MIN_SECRET_LENGTH} ({make_one})"
                )
            elif key.lower().startswith(PLACEHOLDER_KEY):
                # Long enough, and known to everyone who read an example: no key at all.
                problems.append(
                    f"NEWSLETTER_SECRET_KEY={MASK}: is a placeholder (it starts with"
                    f" {PLACEHOLDER_KEY!r}), which anyone could sign links with ({make_one})"
                )
        if self.translator == "deepl" and self.translator_key is None:
            problems.append("NEWSLETTER_TRANSLATOR=deepl needs NEWSLETTER_TRANSLATOR_KEY")
        return problems

    @property
    def sender_email(self) -> str:
        """The address of NEWSLETTER_FROM as mail carries it: its domain in IDNA, so that the
        envelope sender, Message-IDs, List-Id and DKIM need no SMTPUTF8 for a domain like
        `bücher.example` (only a local part that is not ASCII does)."""
        local, _, domain = parseaddr(self.from_address)[1].rpartition("@")
        return f"{local}@{ascii_domain(domain)}"

    @property
    def sender_name(self) -> str:
        return parseaddr(self.from_address)[0] or "arXiv Digest"

    @property
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self) -> date:
        """Today in NEWSLETTER_TIMEZONE: the one meaning of "today" (a digest's date, the
        default of every `--date`, what a preview or an export shows), so that no two commands
        disagree about the date in the hours when the zone's date is not UTC's."""
        return datetime.now(self.zone).date()

    @property
    def weekdays(self) -> set[int]:
        """The days the daily job runs, Monday = 0."""
        return {WEEKDAYS.index(day) for day in self.send_days.split(",") if day}

    @property
    def huey_path(self) -> Path:
        return self.var_dir / "huey.db"

    def secret(self) -> str:
        """The signing key: set explicitly, or generated once and kept under the var folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env == "production":
            raise ConfigError("NEWSLETTER_SECRET_KEY must be set when NEWSLETTER_ENV=production")
        path = self.var_dir / SECRET_KEY_FILE
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def check_production(self) -> list[str]:
        """What is unwise but not wrong in production, in words (what is wrong: `problems`)."""
        warnings = []
        if not self.base_url.startswith("https://"):
            warnings.append(
                "NEWSLETTER_BASE_URL is not https (mail clients want https unsubscribe links)"
            )
        if self.smtp_url is None:
            warnings.append("NEWSLETTER_SMTP_URL is not set (mail goes to the outbox folder)")
        return warnings

    def masked(self) -> dict[str, str]:
        """Every setting by its environment name, with secrets and passwords masked."""
        return {
            variable_name(name): shown(name, getattr(self, name))
            for name in type(self).model_fields
        }


@lru_cache(maxsize=1)
def _descriptions() -> dict[str, str]:
    """Each setting's docstring, the string written under its field, by its name; none when
    the source cannot be read (an install of bytecode alone): messages then end without it."""
    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(Settings))).body[0].body
    except (OSError, TypeError):
        return {}
    return {
        field.target.id: inspect.cleandoc(after.value.value)
        for field, after in zip(body, body[1:], strict=False)
        if isinstance(field, ast.AnnAssign)
        and isinstance(field.target, ast.Name)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }


def description(name: str) -> str:
    """What a setting is for: its docstring in `Settings`, "" for one without."""
    return _descriptions().get(name, "")


def variable_name(name: str) -> str:
    """The environment variable of a field: NEWSLETTER_SMTP_TIMEOUT for `smtp_timeout`."""
    return Settings.model_fields[name].alias or f"{PREFIX}{name.upper()}"


def shown(name: str, value: object) -> str:
    """A setting's value fit to print: a secret masked, the password of a URL masked."""
    if value is None:
        return "(unset)"
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if name in URL_SECRETS or name == "database_url":
        # Only a URL's password can be told from the rest; a value with no host part at all
        # (the password itself, pasted by mistake, or `smtp:/user:pass@host`) is masked whole.
        return mask_url_password(text) if has_host(text) else (MASK if text else "")
    if "://" in text:
        return mask_url_password(text)  # a translator's ?api_key=, say
    is_secret = "SecretStr" in str(Settings.model_fields[name].annotation)
    return (MASK if text else "") if is_secret else text


def shown_setting(name: str, value: object) -> str:
    """`NEWSLETTER_SMTP_URL=smtp://me:********@relay:587`: how every message names a setting."""
    return f"{variable_name(name)}={shown(name, value)}"
