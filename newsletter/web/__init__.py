"""The web app: subscribing (double opt-in), preferences, unsubscribing (RFC 8058 one-click
included), the digest archive, Atom feeds and the operator's preview.

`create_app` composes one blueprint per area; each is thin over the layers below: it reads
tokens, asks `store`, `optin`, `digest` and `feeds`, and renders templates.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request, send_from_directory
from flask_wtf.csrf import CSRFError

from newsletter.config import Settings, get_settings
from newsletter.render import static_dir
from newsletter.web import admin, archive, feeds, preferences, subscribe, unsubscribe
from newsletter.web.common import (
    PRIVATE_BLUEPRINTS,
    PRIVATE_ENDPOINTS,
    SECURITY_HEADERS,
    SETTINGS_KEY,
    csrf,
    message,
)

BLUEPRINTS = (
    archive.blueprint,
    subscribe.blueprint,
    preferences.blueprint,
    unsubscribe.blueprint,
    feeds.blueprint,
    admin.blueprint,
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__, static_folder=None)
    # A key of its own for cookies, derived from the signing secret, never the secret itself.
    app.secret_key = hmac.new(settings.secret().encode(), b"flask-session", hashlib.sha256).digest()
    app.config.update(
        {SETTINGS_KEY: settings},
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            # A view may set a header of its own (the admin preview's policy for email HTML).
            response.headers.setdefault(name, value)
        if request.blueprint in PRIVATE_BLUEPRINTS or request.endpoint in PRIVATE_ENDPOINTS:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_failed(_error: CSRFError):
        return message(
            "Please try again",
            "This form expired or did not come from this site. Reload the page and try again.",
            400,
        )

    @app.errorhandler(404)
    def not_found(_error):
        return message("Not found", "There is no page here.", 404)

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(static_dir(), name)

    @app.get("/healthz")
    def health():
        return {"ok": True}

    return app
