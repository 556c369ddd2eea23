"""Settings: one source of truth, read from NEWSLETTER_* environment variables and `.env`.

Every setting has a safe default so that nothing needs configuring to try the service; the
README lists them all (a test checks that it does).
"""

from __future__ import annotations

import os
import secrets
from datetime import date, datetime, time
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)


class Settings(BaseSettings):
    """The effective configuration of one process."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production"] = "development"
    var_dir: Path = Path("./var")
    database_url: str = ""
    redis_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    smtp_timeout: float = 30.0
    smtp_max_attempts: int = Field(5, ge=1)
    smtp_retry_backoff: float = 30.0
    delivery_lease: float = Field(600.0, gt=0)
    record_every: int = Field(250, ge=1)
    """Successful sends written to the database together, one UPDATE; also the most messages a
    sending thread that dies can leave sent but unmarked (sent again, same Message-ID)."""
    record_interval: float = Field(1.0, gt=0)
    """Seconds after which sends are written even if fewer than `record_every`."""
    dkim_key_file: Path | None = None
    dkim_selector: str = "digest"
    dkim_domain: str = ""
    outbox_dir: Path | None = None
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_delay: float = 3.0
    arxiv_timeout: float = 30.0
    arxiv_retries: int = 3
    arxiv_backoff: float = 1.0
    arxiv_page_size: int = 100
    fetch_max_per_topic: int = 100
    hf_code_links: bool = True
    """Ask the Hugging Face papers API for the code of papers whose text links none."""
    hf_api_url: str = "https://huggingface.co"
    hf_timeout: float = 10.0
    code_recheck_days: int = Field(7, ge=0)
    """Papers still without code are asked about again daily for this many days."""
    base_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None
    from_address: str = Field("arXiv Digest <digest@localhost>", alias="NEWSLETTER_FROM")
    list_id: str = ""
    digest_max_per_topic: int = 10
    send_empty: bool = False
    daily_time: str = "06:00"
    timezone: str = "UTC"
    send_days: str = "mon,tue,wed,thu,fri"
    send_rate: float = 0.0
    send_batch_size: int = 500
    check_deliverability: bool = False
    default_language: str = "en"
    translator: Literal["none", "google", "openai", "deepl", "libretranslate"] = "none"
    translator_url: str = ""
    """Empty: the provider's usual address (see `newsletter.translate.DEFAULT_URLS`)."""
    translator_key: SecretStr | None = None
    translator_model: str = "gpt-4o-mini"
    translator_timeout: float = 30.0
    translator_retries: int = 3
    translator_backoff: float = 1.0
    translator_budget: float = 300.0
    """Seconds a digest may spend on translation, retries included; then originals go out."""
    translator_batch_size: int = Field(8, ge=1, le=50)
    translate_titles: bool = False
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

    @field_validator("base_url", "arxiv_api_url", "translator_url", "hf_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("daily_time")
    @classmethod
    def _valid_time(cls, value: str) -> str:
        try:
            return time.fromisoformat(value.strip()).strftime("%H:%M")
        except ValueError as error:
            raise ValueError(f"NEWSLETTER_DAILY_TIME must be HH:MM, got {value!r}") from error

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"NEWSLETTER_TIMEZONE: unknown time zone {value!r}") from error
        return value.strip()

    @field_validator("send_days")
    @classmethod
    def _valid_days(cls, value: str) -> str:
        days = [day.strip().lower()[:3] for day in value.split(",") if day.strip()]
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown:
            raise ValueError(f"NEWSLETTER_SEND_DAYS: {unknown} are not days (mon … sun)")
        return ",".join(days)

    @field_validator("translator", mode="before")
    @classmethod
    def _provider_name(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _usable_translator(self) -> Settings:
        # Said when the process starts, rather than found out by the daily job.
        if self.translator_url and not self.translator_url.startswith(("http://", "https://")):
            raise ValueError(
                f"NEWSLETTER_TRANSLATOR_URL must start with http:// or https://,"
                f" got {self.translator_url!r}"
            )
        if self.translator == "deepl" and self.translator_key is None:
            raise ValueError("NEWSLETTER_TRANSLATOR=deepl needs NEWSLETTER_TRANSLATOR_KEY")
        return self

    @field_validator("from_address")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"NEWSLETTER_FROM needs an address with a domain, got {value!r}")
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

    @property
    def sender_email(self) -> str:
        return parseaddr(self.from_address)[1]

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
        """Problems that make this configuration unfit for production, in words."""
        problems = []
        if self.secret_key is None:
            problems.append("NEWSLETTER_SECRET_KEY is not set")
        if not self.base_url.startswith("https://"):
            problems.append(
                "NEWSLETTER_BASE_URL is not https (mail clients want https unsubscribe links)"
            )
        if self.smtp_url is None:
            problems.append("NEWSLETTER_SMTP_URL is not set (mail goes to the outbox folder)")
        return problems

    def masked(self) -> dict[str, str]:
        """Every setting by its environment name, with secrets and passwords masked."""
        shown = {}
        for name, field in type(self).model_fields.items():
            env_name = field.alias or f"NEWSLETTER_{name.upper()}"
            shown[env_name] = mask(getattr(self, name))
        return shown


def mask(value: object) -> str:
    """A setting as text, never revealing a secret or the password inside a URL."""
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        if "://" in raw:
            return mask_url_password(raw)
        return "********"
    return str(value)


def mask_url_password(url: str) -> str:
    """`smtp://user:pass@host` → `smtp://user:********@host`."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':********' if colon else ''}@{host}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    try:
        return Settings()
    except ValueError as error:
        raise ConfigError(str(error)) from error
