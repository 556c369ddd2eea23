"""The web app: subscribing (double opt-in), preferences, unsubscribing (RFC 8058 one-click
included), the digest archive, Atom feeds and the operator's preview.

`create_app` composes one blueprint per area (`subscribe` with `optin`, `preferences`,
`unsubscribe`, `paper_actions` (a paper card's Save / More / Less), `library`, `archive`,
`feeds`, `admin`, `health`), and the JSON API for programs (`api`, under /api/v1/), behind
`limits` (what is refused before any view runs). Each is thin over the layers below: it reads
tokens, asks `store`, the digest's `Edition` and `publish.feeds`, and renders through
`render`. It may import every package but `cli`, which starts it; `worker` only for what the
API shows and does of the queue (the daily job queued, `newsletter status` as JSON).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable

from flask import Flask, Response, request, send_from_directory
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from newsletter.config import Settings, check_settings, get_settings, unknown_variables
from newsletter.db import lock_timeout
from newsletter.render.environment import static_dir
from newsletter.web import (
    admin,
    api,
    archive,
    feeds,
    health,
    library,
    limits,
    optin,
    paper_actions,
    preferences,
    subscribe,
    unsubscribe,
)
from newsletter.web.common import (
    HSTS,
    PRIVATE_BLUEPRINTS,
    PRIVATE_ENDPOINTS,
    SECURITY_HEADERS,
    SETTINGS_KEY,
    csrf,
    is_api_request,
    message,
)

log = logging.getLogger(__name__)

BLUEPRINTS = (
    archive.blueprint,
    subscribe.blueprint,
    preferences.blueprint,
    unsubscribe.blueprint,
    paper_actions.blueprint,
    library.blueprint,
    feeds.blueprint,
    admin.blueprint,
    health.blueprint,
)


class UnversionedRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the versions it names in every answer's Server
    header (`Werkzeug/3.1.9 Python/3.11.7`), which tell a scanner which known flaws to try.
    gunicorn says only `gunicorn` since 20.1."""

    def version_string(self) -> str:
        return "Werkzeug"


class WebApp(Flask):
    """Flask, with the database wait and the server header of this app."""

    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if limits.is_chunked(environ):  # routed here only then: most requests say their length
            limits.bound_chunked_body(environ, limits.body_limit(self._endpoint_of(environ)))
        # Every request's units of work wait a short while for a locked database (see
        # `limits.LOCK_WAIT`); the worker and the CLI, in their own processes, wait longer.
        with lock_timeout(limits.LOCK_WAIT):
            return super().wsgi_app(environ, start_response)

    def _endpoint_of(self, environ: dict) -> str | None:
        """The endpoint a request is for, before Flask routes it; None when it is for none."""
        try:
            endpoint, _arguments = self.url_map.bind_to_environ(environ).match()
        except HTTPException:
            return None
        return endpoint

    def run(self, *args, **options) -> None:
        # `newsletter serve` runs Werkzeug's server through here.
        options.setdefault("request_handler", UnversionedRequestHandler)
        super().run(*args, **options)


def create_app(
    settings: Settings | None = None, *, confirmations: optin.Queue | None = None
) -> Flask:
    """The web app. Confirmation emails of the opt-in are queued for a worker, or handed to
    `confirmations` (`newsletter serve`, which runs no worker, sends them from a thread)."""
    # Checked before anything is served: under gunicorn, a ConfigError here stops the boot with
    # its lines (one per setting) rather than answering every request with a 500.
    settings = check_settings(settings) if settings is not None else get_settings()
    for warning in unknown_variables():
        log.warning("%s", warning)
    app = WebApp(__name__, static_folder=None)
    https = settings.base_url.startswith("https://")
    # A key of its own for cookies, derived from the signing secret, never the secret itself.
    app.secret_key = hmac.new(settings.secret().encode(), b"flask-session", hashlib.sha256).digest()
    app.config.update(
        {SETTINGS_KEY: settings, optin.QUEUE_KEY: confirmations or optin.to_worker},
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=limits.MAX_BODY,
    )
    # Before CSRF's own check, which reads the form: a request too large, or with a NUL in it,
    # is refused before anything else looks at it.
    app.before_request(limits.refuse_oversized_body)
    app.before_request(limits.refuse_nul)
    # The API's requests get problem details (JSON) where the pages get pages.
    app.register_error_handler(413, api.pages_or_problems(limits.too_large))
    app.register_error_handler(OperationalError, api.pages_or_problems(limits.database_busy))
    app.register_error_handler(HTTPException, api.pages_or_problems(lambda error: error))
    app.register_error_handler(500, api.pages_or_problems(lambda error: error))
    csrf.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    api.init_api(app)

    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            # A view may set a header of its own (the admin preview's policy for email HTML).
            response.headers.setdefault(name, value)
        private = request.blueprint in PRIVATE_BLUEPRINTS or request.endpoint in PRIVATE_ENDPOINTS
        if private or is_api_request():
            response.headers["Cache-Control"] = "no-store"
        if https:
            # Decided by the configured address, not the request: behind the TLS proxy every
            # request arrives as plain http. Over http a browser would ignore it anyway.
            response.headers["Strict-Transport-Security"] = HSTS
        return response

    @app.errorhandler(CSRFError)
    def csrf_failed(_error: CSRFError):
        return message(
            "Please try again",
            "This form expired or did not come from this site. Reload the page and try again.",
            400,
        )

    @app.errorhandler(404)
    @api.pages_or_problems
    def not_found(_error):
        return message("Not found", "There is no page here.", 404)

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(static_dir(), name)

    return app
