"""Logging for the processes that run for long: one line per event, as text or as JSON
(NEWSLETTER_LOG_FORMAT), at NEWSLETTER_LOG_LEVEL, with secrets masked.

One line per event, because log shippers (journald, Docker, Loki, Vector) take each line for
an event: a traceback spread over twenty lines becomes twenty events. In JSON it is one field
of the event's object; in text, its line breaks are written `\\n`. Either way a line break in
a message (a subject, an address someone typed) cannot forge a line of its own.

Secrets never reach a log: the password in any URL (`smtp://me:********@relay`), `token=`
and `key=` parameters (the admin token in an access log line) and the values of the secret
settings are masked in every line, whatever logger wrote it.

`newsletter worker` and `newsletter serve` call `setup_logging`; gunicorn uses
`--logger-class newsletter.logs.GunicornLogger`, which formats gunicorn's own error and
access logs the same way and sets up the app's.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO
from urllib.parse import unquote

from gunicorn import glogging
from pydantic import SecretStr

from newsletter.config import (
    MASK,
    SECRET_PARAMETERS,
    Settings,
    get_settings,
    mask_url_password,
    url_password,
)

HANDLER_NAME = "newsletter"
"""The name of the handler `setup_logging` adds, so that running it again replaces it (and
no handler someone else added, pytest's for one, is touched)."""
SHORTEST_SECRET = 6
"""Secret values shorter than this are not searched for: masking every "abc" in every line
would hide more than the secret."""

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets`, URL passwords and token and key parameters masked.

    The known secrets go first: a password is found whole that way, whatever it holds (an
    "@", a space), where reading it out of a URL is a guess. What is left is masked as
    `newsletter config` masks a setting (`mask_url_password`), in each URL of the line, then
    the parameters of what is no whole URL (an access log's `GET /metrics?token=…`).
    """
    for secret in secrets:
        if len(secret) >= SHORTEST_SECRET:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda url: mask_url_password(url.group()), text)
    return SECRET_PARAMETERS.sub(rf"\g<head>{MASK}", text)


def secret_values(settings: Settings) -> list[str]:
    """The secrets of these settings as they could appear in a line: each secret setting's
    value, and the password inside each address setting, as written and decoded."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            continue
        if "://" in raw:
            password = url_password(raw)
            if password:
                values += [password, unquote(password)]
        elif isinstance(value, SecretStr) and raw:
            values.append(raw)
    # Longest first: a secret that contains another is masked whole.
    return sorted(set(values), key=len, reverse=True)


class TextFormatter(logging.Formatter):
    """`2026-11-27 06:00:01,234 INFO newsletter.worker.tasks message`, traceback on the line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = mask_secrets(super().format(record), self.secrets)
        return text.replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, process; `exception` (the
    whole traceback) and `stack` when the record has them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in entry.items():
            if isinstance(value, str):
                entry[key] = mask_secrets(value, self.secrets)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_for(settings: Settings) -> logging.Formatter:
    secrets = secret_values(settings)
    return JsonFormatter(secrets) if settings.log_format == "json" else TextFormatter(secrets)


def setup_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Every logger of this process writes to `stream` (stderr) in NEWSLETTER_LOG_FORMAT, at
    NEWSLETTER_LOG_LEVEL; Python's warnings become log lines too. Safe to call again."""
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter_for(settings))
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, its error and access lines formatted as NEWSLETTER_LOG_FORMAT says,
    secrets masked (an access line shows `?token=…`); and the app's own loggers set up.

    Example: gunicorn --logger-class newsletter.logs.GunicornLogger 'newsletter.web:create_app()'
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        settings = get_settings()
        formatter = formatter_for(settings)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(formatter)
        setup_logging(settings)
