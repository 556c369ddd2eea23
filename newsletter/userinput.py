"""Text people type or import, checked before anything stores it: no control characters.

A NUL is stored by SQLite and refused by PostgreSQL (where one such row would abort a whole
import there), and an escape sequence or a line break in a name ends up in mail headers and
terminals. Tab, line feed and carriage return are ordinary whitespace: a one-line field
folds them into a space; every other control character (C0, DEL, C1) is refused, naming it.
So is an unpaired surrogate (YAML's "\\ud800", bytes that are not UTF-8 in a command's
argument): no database driver can encode it, and it would fail there instead.
"""

from __future__ import annotations

import re

from newsletter.errors import InvalidInput

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""What no text we store may hold: C0 controls but tab and line breaks, DEL, C1, and unpaired
surrogates. Typed or imported text is refused with it; text from arXiv or a translator is
cleaned or checked with it."""


def without_control_characters(value: str, what: str) -> str:
    """`value` as it is; InvalidInput naming `what` when it holds a control character."""
    found = CONTROL_CHARACTERS.search(value)
    if found:
        code = ord(found.group())
        kind = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
        raise InvalidInput(f"{what} holds {kind} (U+{code:04X} at position {found.start() + 1})")
    return value


def one_line(value: str, what: str) -> str:
    """`value` on one line: ends trimmed, each run of whitespace (line breaks too) one space;
    InvalidInput naming `what` when it holds a control character."""
    return " ".join(without_control_characters(value, what).split())
