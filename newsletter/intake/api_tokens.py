"""API tokens as the operator names them: a token's name, its scopes (checked against the
known ones), and the token itself (256 random bits, shown once, kept only as its SHA-256).

A scope is `<resource>:read` or `<resource>:write`, or `job:run`; `write` includes `read` of
the same resource, and `*` grants every scope (an admin script's token)."""

from __future__ import annotations

import hashlib
import secrets

from newsletter.errors import InvalidInput
from newsletter.userinput import one_line

SCOPES: dict[str, str] = {
    "topics:read": "list and show topics",
    "topics:write": "add, edit, delete and test topics",
    "subscribers:read": "list and show subscribers and their events",
    "subscribers:write": "add, edit, delete and import subscribers",
    "digests:read": "list and show digests, their papers and deliveries",
    "papers:read": "search papers",
    "job:read": "see the last runs of the daily job and the queue",
    "job:run": "queue the daily job now",
}
"""Every scope a token may hold, with what it allows."""
ALL_SCOPES = "*"
"""Every scope, present and future: for the operator's own scripts."""
IMPLIED = {
    "topics:write": "topics:read",
    "subscribers:write": "subscribers:read",
    "job:run": "job:read",
}
"""What a scope includes besides itself."""

TOKEN_PREFIX = "nlt_"  # noqa: S105 (a prefix, not a secret)
"""Marks a string as one of our tokens, for secret scanners and for people."""
MAX_NAME = 100


def token_name(name: str) -> str:
    """A token's name, on one line, not empty, at most MAX_NAME characters."""
    text = one_line(name, "the token's name")
    if not text:
        raise InvalidInput("a token needs a name (say which program holds it: --name lab-site)")
    if len(text) > MAX_NAME:
        raise InvalidInput(f"the token's name is over {MAX_NAME} characters")
    return text


def normalise_scopes(scopes) -> list[str]:
    """The scopes as given, each once, in the order of SCOPES; raises on an unknown one, naming
    the known scopes."""
    wanted = {scope.strip().lower() for scope in scopes if scope.strip()}
    unknown = sorted(wanted - set(SCOPES) - {ALL_SCOPES})
    if unknown:
        raise InvalidInput(
            f"unknown scope {', '.join(map(repr, unknown))}; known scopes:"
            f" {', '.join(SCOPES)}, or {ALL_SCOPES} for all"
        )
    if not wanted:
        raise InvalidInput(
            f"a token needs at least one scope (--scope); known scopes: {', '.join(SCOPES)}"
        )
    if ALL_SCOPES in wanted:
        return [ALL_SCOPES]
    return [scope for scope in SCOPES if scope in wanted]


def grants(scopes, needed: str) -> bool:
    """Whether a token with `scopes` may do what `needed` allows."""
    held = set(scopes)
    return ALL_SCOPES in held or needed in held or any(IMPLIED.get(s) == needed for s in held)


def new_token() -> str:
    """A fresh token: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its hex SHA-256 (256 random bits need no salt, nor a slow
    hash: there is nothing to guess)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
