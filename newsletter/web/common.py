"""What every part of the web app shares: settings, pages, CSRF, headers, tokens, dates."""

from __future__ import annotations

from datetime import date

from flask import abort, current_app, request
from flask_wtf.csrf import CSRFProtect

from newsletter.config import Settings
from newsletter.errors import InvalidToken
from newsletter.render.pages import render_page
from newsletter.tokens import read_token

csrf = CSRFProtect()
"""One CSRF guard for every form; the RFC 8058 one-click POST is exempt (it has no cookie)."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:;"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

HSTS = "max-age=31536000; includeSubDomains"
"""Sent when NEWSLETTER_BASE_URL is https: browsers then use https only, for a year."""

PRIVATE_BLUEPRINTS = {
    "unsubscribe",
    "subscribe",
    "preferences",
    "admin",
    "paper_actions",
    "library",
}
"""Pages that are one person's, or carry a CSRF token: no shared cache may keep them."""
PRIVATE_ENDPOINTS = {"archive.personal_digest"}

SETTINGS_KEY = "NEWSLETTER_SETTINGS"

API_PREFIX = "/api/v1"
"""Where the JSON API lives: requests under it are answered in JSON, errors as problem details."""


def is_api_request() -> bool:
    """Whether the current request is for the JSON API (by its path: also when no route
    matched)."""
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def settings() -> Settings:
    """The settings the app was made with."""
    return current_app.config[SETTINGS_KEY]


def page(template: str, status: int = 200, **context: object) -> tuple[str, int]:
    """A page of `templates/web/`, with the site's name."""
    return render_page(template, site_name=settings().sender_name, **context), status


def message(title: str, text: str, status: int = 200, **context: object) -> tuple[str, int]:
    """A page that says one thing (a result, or what went wrong)."""
    return page("message.html.j2", status, title=title, message=text, **context)


def invalid_link(what: str) -> tuple[str, int]:
    """The one page every broken, tampered or foreign link of a kind gets."""
    return message(
        "This link is not valid",
        f"The {what} link is broken or incomplete. Copy the whole link from the email, or use"
        " the link in a newer email.",
        400,
    )


def gone() -> tuple[str, int]:
    """One answer for a link of a reader no longer on the list, or of a paper no longer here:
    the same for both, so a link tells nothing of who is on the list."""
    return message(
        "Nothing to do here",
        "This link belongs to a paper or a reading list that is no longer here.",
        404,
    )


def token_value(purpose: str, token: str) -> str | None:
    """The public id signed in a token made for `purpose`; None for any other token."""
    try:
        return read_token(settings().secret(), purpose, token)
    except InvalidToken:
        return None


def parse_day(day: str) -> date:
    """A digest's date from its address; 404 for anything but YYYY-MM-DD (one address a day)."""
    try:
        issue_date = date.fromisoformat(day)
    except ValueError:
        abort(404)
    if day != issue_date.isoformat():  # 20261126, 2026-W48-4
        abort(404)
    return issue_date
