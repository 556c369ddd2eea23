"""Settings: one source of truth, read from NEWSLETTER_* environment variables and `.env`.

Every setting has a safe default so that nothing needs configuring to try the service; the
README lists them all (a test checks that it does). Settings are checked when they are read,
before any command, the worker or the web app does anything: a value that cannot work is one
line naming its variable (`read_settings`), a name that is no setting is a warning with the
closest one that is (`unknown_variables`), and no password is ever shown (`mask_url_password`).
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import idna
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)
PREFIX = "NEWSLETTER_"
ENV_FILE = ".env"
MIN_SECRET_LENGTH = 32
"""Characters a production signing key needs at least (`openssl rand -hex 32` makes 64)."""
PLACEHOLDER_KEY = "change-me"
"""How the placeholder of an example's signing key starts: refused in production."""
MASK = "********"
COMMAND_LINE_VARIABLES = ("NEWSLETTER_DEBUG",)
"""NEWSLETTER_* names the command line reads itself (`--debug`): known, though not settings."""
URL_SECRETS = ("redis_url", "smtp_url")
"""Secrets that are URLs: shown with only their password masked (the rest is needed to tell
what is wrong); every other secret is masked whole."""
TEST_PREFIX = "NEWSLETTER_TEST_"
"""The test suite's own variables (which servers to use): never settings, never reported."""


class Settings(BaseSettings):
    """The effective configuration of one process."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",  # whatever the locale: `env_file_problem` checks it is
        extra="ignore",
        populate_by_name=True,
        # Each field's docstring is its description: error messages end with it.
        use_attribute_docstrings=True,
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
    smtp_max_attempts: int = Field(5, ge=1)
    """Tries for a message the server refuses for now, before it counts as failed."""
    smtp_retry_backoff: float = Field(30.0, ge=0)
    """Seconds before the first retry of such a message; doubled for each further one."""
    delivery_lease: float = Field(600.0, gt=0)
    """Seconds a worker holds the deliveries it claimed."""
    record_every: int = Field(250, ge=1)
    """Successful sends written to the database together, one UPDATE. Each is also noted at once
    in the send journal (`send_journal`), so a sending thread that dies sends again at most its
    one message in flight; without the journal (a crashed machine) up to this many."""
    record_interval: float = Field(1.0, gt=0)
    """Seconds after which sends are written even if fewer than `record_every`."""
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
    send_batch_size: int = Field(500, ge=1)
    """Messages handed to one SMTP connection at a time."""
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

    @field_validator("base_url", "arxiv_api_url", "translator_url", "hf_api_url")
    @classmethod
    def _web_address(cls, value: str, info: ValidationInfo) -> str:
        value = lower_case_scheme(value.strip()).rstrip("/")
        if info.field_name == "translator_url" and not value:
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

    @field_validator("translator", "log_format", mode="before")
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


# ------------------------------------------------------------------------ reading, checking


@dataclass
class SettingsReport:
    """The settings as read, and everything wrong with them."""

    settings: Settings | None
    """None only if even the defaults could not stand in for the values found wrong."""
    errors: list[str] = field(default_factory=list)
    """One line per variable that cannot work: no command may run with them."""
    invalid: dict[str, str] = field(default_factory=dict)
    """The variables found wrong, with their values as read (masked): `settings` has their
    defaults instead."""


def read_settings() -> SettingsReport:
    """Read the settings, and say what is wrong with every one of them, never raising: the
    values found wrong are replaced by their defaults, so that the rest can still be shown."""
    unreadable = env_file_problem(Path(ENV_FILE))
    # An .env that cannot be read is one error, and the environment alone is read, so the rest
    # can still be shown and checked.
    options: dict[str, Any] = {"_env_file": None} if unreadable else {}
    first = [unreadable] if unreadable else []
    try:
        settings = Settings(**options)
    except ValidationError as error:
        errors, invalid, fields = [], {}, set()
        for detail in error.errors():
            name = _field_name(detail["loc"])
            errors.append(_in_words(name, detail))
            if name is not None:
                fields.add(name)
                invalid[variable_name(name)] = shown(name, detail.get("input"))
        defaults = {name: Settings.model_fields[name].get_default() for name in fields}
        try:
            settings = Settings(**options, **defaults)
        except ValidationError:
            return SettingsReport(None, first + errors, invalid)
        return SettingsReport(settings, first + errors + settings.problems(), invalid)
    return SettingsReport(settings, first + settings.problems())


def env_file_problem(path: Path) -> str | None:
    """Why the .env file at `path` cannot be read as settings, in one line; None when it can
    (or there is none). Its text is never quoted: it holds secrets."""
    try:
        data = path.read_bytes() if path.is_file() else b""
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return (
            f"{path}: line {line} is not UTF-8 text (byte 0x{data[error.start]:02x}): save the"
            " file as UTF-8"
        )
    except OSError:
        return None  # unreadable: reading it says why, in words (`file_failure`)
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once; ConfigError (one line per problem) if any
    cannot work."""
    report = read_settings()
    if report.errors or report.settings is None:
        raise ConfigError("\n".join(report.errors))
    return report.settings


def check_settings(settings: Settings) -> Settings:
    """`settings` if they can work together, else ConfigError: for those made in code."""
    problems = settings.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def variable_name(name: str) -> str:
    """The environment variable of a field: NEWSLETTER_SMTP_TIMEOUT for `smtp_timeout`."""
    return Settings.model_fields[name].alias or f"{PREFIX}{name.upper()}"


def known_variables() -> set[str]:
    return {variable_name(name) for name in Settings.model_fields} | set(COMMAND_LINE_VARIABLES)


def unknown_variables(env_file: Path | None = None) -> list[str]:
    """A warning for every NEWSLETTER_* name in the environment or the .env file that is no
    setting (and so changes nothing), with the closest name that is."""
    env_file = Path(ENV_FILE) if env_file is None else env_file
    found = {name.upper(): "the environment" for name in os.environ}
    # An .env that is no UTF-8 text is not read here: `read_settings` says so, as an error.
    if env_file.is_file() and env_file_problem(env_file) is None:
        from dotenv import dotenv_values  # pydantic-settings reads .env with it too

        for name in dotenv_values(env_file, encoding="utf-8"):
            found.setdefault(name.upper(), str(env_file))
    known = known_variables()
    suffixes = {name.removeprefix(PREFIX): name for name in known}
    warnings = []
    for name, where in sorted(found.items()):
        if not name.startswith(PREFIX) or name.startswith(TEST_PREFIX) or name in known:
            continue
        # Compared without the prefix, which every name shares and would make all look alike.
        close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1)
        hint = f"; did you mean {suffixes[close[0]]}?" if close else ""
        warnings.append(f"{name} (in {where}) is not a setting, so it changes nothing{hint}")
    return warnings


def _field_name(loc: tuple) -> str | None:
    for name, field_info in Settings.model_fields.items():
        if loc and loc[0] in (name, field_info.alias):
            return name
    return None


def _in_words(name: str | None, detail: Any) -> str:
    """One pydantic error as `NEWSLETTER_X=value: what is wrong (what the setting is)`."""
    kind, context = detail["type"], detail.get("ctx") or {}
    if kind == "value_error":
        what = str(context.get("error", detail["msg"]))
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        limit = next(iter(context.values()))
        words = {
            "greater_than": "more than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }
        what = f"must be {words[kind]} {limit:g}"
    elif kind.startswith("int_"):
        what = "must be a whole number"
    elif kind.startswith("float_") or kind == "finite_number":
        what = "must be a number"
    elif kind.startswith("bool_"):
        what = "must be true or false"
    elif kind == "literal_error":
        what = "must be " + str(context.get("expected", "")).replace("'", "")
    else:
        what = detail["msg"]
    if name is None:
        return what
    variable = variable_name(name)
    line = f"{shown_setting(name, detail.get('input'))}: "
    if kind == "value_error":
        # Our own checks say what the value should be; they may name the variable already.
        return line + re.sub(rf"^{variable}\b:?\s*", "", what)
    about = _about(name)  # pydantic's only say what is wrong: the setting's purpose helps
    return line + what + (f" ({about})" if about else "")


def _about(name: str) -> str:
    """The first clause of a setting's description, to end its error message with."""
    text = " ".join((Settings.model_fields[name].description or "").split())
    clause = re.split(r"; |\. |\.$", text, maxsplit=1)[0].strip()
    first_word = clause.split(" ", 1)[0]
    if sum(letter.isupper() for letter in first_word) == 1:  # "The", not "SQLite" or "PEM"
        clause = clause[0].lower() + clause[1:]
    return clause


def shown(name: str, value: object) -> str:
    """A setting's value fit to print: a secret masked, the password of a URL masked."""
    if value is None:
        return "(unset)"
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if name in URL_SECRETS or name == "database_url":
        # Only a URL's password can be told from the rest; a value with no host part at all
        # (the password itself, pasted by mistake, or `smtp:/user:pass@host`) is masked whole.
        has_host = _SCHEME.match(text) or _WITHOUT_SCHEME.match(text)
        return mask_url_password(text) if has_host else (MASK if text else "")
    if "://" in text:
        return mask_url_password(text)  # a translator's ?api_key=, say
    is_secret = "SecretStr" in str(Settings.model_fields[name].annotation)
    return (MASK if text else "") if is_secret else text


def shown_setting(name: str, value: object) -> str:
    """`NEWSLETTER_SMTP_URL=smtp://me:********@relay:587`: how every message names a setting."""
    return f"{variable_name(name)}={shown(name, value)}"


# ---------------------------------------------------------------------------- addresses

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_WITHOUT_SCHEME = re.compile(r"[^/@\s]*@[^/@\s]|[A-Za-z0-9.-]+:\d+(?:/|$)")
"""`user:pass@host:587` or `127.0.0.1:6379/0`: a URL with its scheme left out. (A bare word
might be a host, or the password itself pasted by mistake: that one is not shown.)"""
SECRET_PARAMETERS = re.compile(
    r"(?P<head>[?&;](?:token|key|api_key|apikey|access_token|auth_key|password)=)[^&;#\s\"']+",
    re.IGNORECASE,
)
"""The query parameters that carry a secret: `?token=` of the admin pages, `?api_key=` of a
translator, `?password=` of a Redis socket."""
PERCENT_ENCODE = (
    "has a password the URL cannot hold as it is: percent-encode / # ? @ : in it"
    " (%2F %23 %3F %40 %3A)"
)


def check_web_url(url: str, *, links: bool = False) -> None:
    """ValueError unless `url` is an absolute http(s) address with a host; `links`: also no
    `?` or `#` (even an empty one) that the paths appended to it would end up behind."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is no number)
    except ValueError as error:
        raise ValueError("is not a valid address (check the host and the port)") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if links:
            raise ValueError(
                "must start with https:// (or http://) and name a host, like"
                " https://digest.example.org: every link in every email starts with it"
            )
        raise ValueError(
            "must start with http:// or https:// and name a host, like https://example.org"
        )
    if links and ("?" in url or "#" in url):
        raise ValueError("must not have a ?query or #fragment: link paths are appended to it")


def lower_case_scheme(url: str) -> str:
    """`HTTPS://Example.org/x` → `https://Example.org/x`: schemes are case-insensitive, and
    what compares them (HSTS, secure cookies, the production check) looks for `https://`."""
    scheme = _SCHEME.match(url)
    return url if scheme is None else scheme.group().lower() + url[scheme.end() :]


def check_smtp_url(url: str) -> None:
    """ValueError unless `url` is an SMTP URL we can use; the message never repeats the URL
    (it holds the password)."""
    example = "like smtp://user:pass@host:587 or smtps://user:pass@host:465"
    if not url.lower().startswith(("smtp://", "smtps://")):
        raise ValueError(f"must start with smtp:// or smtps:// and name a host, {example}")
    if password_breaks_url(url):
        raise ValueError(f"{PERCENT_ENCODE}, {example}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is no number)
    except ValueError:
        raise ValueError(f"has a port that is no number ({example})") from None
    if not parts.hostname:
        raise ValueError(f"must start with smtp:// or smtps:// and name a host, {example}")
    query = parse_qs(parts.query)
    starttls = query.pop("starttls", ["auto"])[-1]
    if query or starttls not in ("auto", "require", "never"):
        raise ValueError("takes only ?starttls=auto, ?starttls=require or ?starttls=never")


def check_redis_url(url: str) -> None:
    """ValueError unless `url` is a Redis URL: redis://, rediss:// or unix://, and a database
    number, if any, that is a number. The message never repeats redis-py's (it may quote a
    piece of the password: "Port could not be cast to integer value as 'sec'")."""
    from redis.connection import parse_url

    example = "like redis://127.0.0.1:6379/0"
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must start with redis://, rediss:// or unix://, {example}")
    if password_breaks_url(url):
        raise ValueError(f"{PERCENT_ENCODE} ({example})")
    try:
        urlsplit(url).port  # noqa: B018 (raises for a port that is no number)
    except ValueError:
        raise ValueError(f"has a port that is no number ({example})") from None
    try:
        options = parse_url(url)
    except ValueError as error:
        # redis-py's only other refusal: "Invalid value for 'name' in connection URL."
        option = re.search(r"for '(\w+)'", str(error))
        name = f" ?{option.group(1)}=" if option else " ?option"
        raise ValueError(f"has a{name} value redis-py cannot read ({example})") from None
    path = urlsplit(url).path.strip("/")
    if url.startswith(("redis://", "rediss://")) and path and not path.isdigit():
        raise ValueError(f"has {path!r} where the database number goes ({example})")
    if options.get("db", 0) < 0:
        raise ValueError(f"has a negative database number ({example})")


SUPPORTED_DATABASES = "SQLite (sqlite:///path/to/file.db) and PostgreSQL (postgresql://…)"


def checked_database_url(url: str) -> str:
    """A database URL we can use, common forms made exact: `postgres://` and `postgresql://`
    (what hosting providers hand out) become `postgresql+psycopg://`, the driver installed
    with `pip install '.[postgres]'`. ValueError, saying what to do, for anything else."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme, found, rest = url.partition("://")
    if not found:
        raise ValueError(f"is not a database URL: use {SUPPORTED_DATABASES}")
    backend, _, driver = scheme.lower().partition("+")
    if backend in ("postgres", "postgresql"):
        url = f"postgresql+{driver or 'psycopg'}://{rest}"
    elif backend != "sqlite":
        name = {"mysql": "MySQL", "mariadb": "MariaDB"}.get(backend, backend)
        raise ValueError(f"{name} is not supported: only {SUPPORTED_DATABASES} are (and tested)")
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError:
        raise ValueError(f"is not a database URL: use {SUPPORTED_DATABASES}") from None
    except NoSuchModuleError:
        raise ValueError(
            f"SQLAlchemy has no driver {driver!r}: leave it out (postgresql://…) to use psycopg"
        ) from None
    except ValueError:  # int() of the port; its message may quote a piece of the password
        raise ValueError(f"has a port that is no number, or {PERCENT_ENCODE}") from None
    if "@" in (parsed.host or ""):
        # SQLAlchemy ends the password at its first "@": the rest would be taken for the host.
        raise ValueError(PERCENT_ENCODE)
    if dialect.is_async:
        raise ValueError(f"{driver} is an asyncio driver, which this service cannot use")
    try:
        dialect.import_dbapi()
    except ImportError as error:
        extra = "pip install '.[postgres]'"
        if driver and driver != "psycopg":
            raise ValueError(
                f"the driver {driver} is not installed ({error}): leave `+{driver}` out to use"
                f" psycopg, which `{extra}` installs"
            ) from None
        raise ValueError(f"the PostgreSQL driver is not installed: {extra}") from None
    return url


def ascii_domain(domain: str) -> str:
    """A domain as DNS and mail carry it: `bücher.example` → `xn--bcher-kva.example` (IDNA);
    ValueError when it has no such form."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise ValueError(str(error)) from None


# ------------------------------------------------------------------------------- masking


def mask_url_password(url: str) -> str:
    """`url` fit to print: `smtp://user:pass@host` → `smtp://user:********@host`, also written
    without its scheme (`user:pass@host:587`), and the values of `?password=`, `?key=`,
    `?token=`, `?api_key=` … masked. Nothing else changes: the rest tells what is wrong.

    The password runs from the colon after the user to the "@" before the host, found so that
    it holds whatever any parser we hand the URL to reads as the password (see `_userinfo_end`).
    """
    span = _password_span(url)
    if span is not None:
        url = f"{url[: span[0]]}{MASK}{url[span[1] :]}"
    return SECRET_PARAMETERS.sub(rf"\g<head>{MASK}", url)


def url_password(url: str) -> str | None:
    """The password in `url` as `mask_url_password` finds it (percent-encoded as written)."""
    span = _password_span(url)
    return url[span[0] : span[1]] if span is not None and span[0] < span[1] else None


def password_breaks_url(url: str) -> bool:
    """Whether the password of `url` holds a / ? or # that is not percent-encoded: urlsplit
    (and so redis-py, and our SMTP settings) then end the host part early, at that character."""
    rest = url[_after_scheme(url) :]
    return _stray_at(rest[len(_authority(rest)) :])


def _password_span(url: str) -> tuple[int, int] | None:
    start = _after_scheme(url)
    rest = url[start:]
    end = _userinfo_end(rest)
    colon = rest.find(":", 0, end) if end >= 0 else -1
    if colon < 0 or "/" in rest[:colon]:  # no userinfo, or no password in it
        return None
    return start + colon + 1, start + end


def _after_scheme(url: str) -> int:
    scheme = _SCHEME.match(url)
    return scheme.end() if scheme else 0  # `user:pass@host:587`: all of it is the authority


def _authority(rest: str) -> str:
    """The authority of `rest` (a URL after its `scheme://`) as urlsplit sees it."""
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _userinfo_end(rest: str) -> int:
    """Where the userinfo of `rest` (a URL after its `scheme://`) ends: the index of its "@",
    or -1. Normally the last "@" of the authority. An unencoded / ? or # in the password ends
    the authority early for urlsplit (SQLAlchemy reads on to the "@"), and then an "@" turns
    up where a URL has none: the userinfo runs to the very last "@" (hiding too much is safe;
    too little is not)."""
    authority = _authority(rest)
    if _stray_at(rest[len(authority) :]):
        return rest.rfind("@")
    return authority.rfind("@")


def _stray_at(after_authority: str) -> bool:
    """Whether an "@" is in the path, the fragment, or a query parameter's name: never in a
    URL we take, always the end of a password that an unencoded / ? # cut short."""
    path_and_query, _, fragment = after_authority.partition("#")
    path, _, query = path_and_query.partition("?")
    names = (pair.partition("=")[0] for pair in re.split("[&;]", query))
    return "@" in path or "@" in fragment or any("@" in name for name in names)
