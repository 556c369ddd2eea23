"""Settings: one source of truth, read from NEWSLETTER_* environment variables and `.env`.

This package owns what the settings are, how they are read and checked before any command,
the worker or the web app does anything, and how a setting is named and printed in messages:

- `settings`: the `Settings` model, every setting with its default and the check of its value;
  how a message names a setting and shows its value (`shown_setting`);
- `checks`: reading the settings (`read_settings`, `get_settings`), and everything wrong with
  them in words, one line per variable, with the names that are no setting (`unknown_variables`);
- `urls`: what a URL setting may hold, where it points (`redis_where`), and how any URL is
  printed without its password (`mask_url_password`).

It imports nothing of `newsletter` but `errors`, so that every other module may import it.
Call sites import from here: `from newsletter.config import Settings, get_settings`.
"""

from newsletter.config.checks import (
    SettingsReport,
    check_settings,
    env_file_problem,
    get_settings,
    known_variables,
    read_settings,
    unknown_variables,
)
from newsletter.config.settings import Settings, shown, shown_setting, variable_name
from newsletter.config.urls import (
    MASK,
    SECRET_PARAMETERS,
    ascii_domain,
    check_redis_url,
    check_smtp_url,
    check_web_url,
    checked_database_url,
    mask_url_password,
    password_breaks_url,
    redis_where,
    url_password,
)

__all__ = [
    "MASK",
    "SECRET_PARAMETERS",
    "Settings",
    "SettingsReport",
    "ascii_domain",
    "check_redis_url",
    "check_settings",
    "check_smtp_url",
    "check_web_url",
    "checked_database_url",
    "env_file_problem",
    "get_settings",
    "known_variables",
    "mask_url_password",
    "password_breaks_url",
    "read_settings",
    "redis_where",
    "shown",
    "shown_setting",
    "unknown_variables",
    "url_password",
    "variable_name",
]
