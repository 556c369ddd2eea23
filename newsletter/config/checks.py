"""Whether the settings can work, said before anything runs: one line per problem, in words.

`read_settings` reads them and never raises: a value that cannot work is one line naming its
variable (pydantic's errors put in words here), and the default stands in for it so that the
rest can still be shown; `get_settings` is how the code gets them, refusing any such line. A
NEWSLETTER_* name that is no setting is a warning with the closest one that is
(`unknown_variables`). No line ever shows a password (`shown_setting`).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from newsletter.config.settings import (
    ENV_FILE,
    PREFIX,
    Settings,
    description,
    shown,
    shown_setting,
    variable_name,
)
from newsletter.errors import ConfigError

COMMAND_LINE_VARIABLES = ("NEWSLETTER_DEBUG",)
"""NEWSLETTER_* names the command line reads itself (`--debug`): known, though not settings."""
TEST_PREFIX = "NEWSLETTER_TEST_"
"""The test suite's own variables (which servers to use): never settings, never reported."""


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
    text = " ".join(description(name).split())
    clause = re.split(r"; |\. |\.$", text, maxsplit=1)[0].strip()
    first_word = clause.split(" ", 1)[0]
    if sum(letter.isupper() for letter in first_word) == 1:  # "The", not "SQLite" or "PEM"
        clause = clause[0].lower() + clause[1:]
    return clause
