"""The web app: unsubscribe pages (RFC 8058 one-click included) and the digest archive.

Thin over the layers below: it reads tokens, asks `store` and `digest`, and renders templates.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

from flask import Flask, Response, abort, redirect, request, send_from_directory
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

from newsletter import store
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.digest import web_content
from newsletter.errors import InvalidToken
from newsletter.models import SubscriberStatus
from newsletter.render import render_digest_list, render_page, render_web_digest, static_dir
from newsletter.tokens import UNSUBSCRIBE, read_token

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:;"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__, static_folder=None)
    # A key of its own for cookies, derived from the signing secret, never the secret itself.
    app.secret_key = hmac.new(settings.secret().encode(), b"flask-session", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf = CSRFProtect(app)
    site = settings.sender_name

    def page(template: str, status: int = 200, **context) -> tuple[str, int]:
        return render_page(template, site_name=site, **context), status

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.endpoint == "unsubscribe":
            # Each page is one subscriber's, with a CSRF token: no shared cache may keep it.
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return page(
            "message.html.j2",
            400,
            title="Please try again",
            message="This form expired or did not come from this site."
            " Reload the page and try again.",
        )

    @app.errorhandler(404)
    def not_found(_error):
        return page("message.html.j2", 404, title="Not found", message="There is no page here.")

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(static_dir(), name)

    @app.get("/healthz")
    def health():
        return {"ok": True}

    @app.get("/")
    def home():
        return redirect("/digests/")

    @app.get("/digests/")
    def digests():
        with session_scope(settings) as session:
            items = [
                (
                    digest.issue_date,
                    store.count_papers_between(session, digest.window_start, digest.window_end),
                    f"/digests/{digest.issue_date.isoformat()}",
                )
                for digest in store.list_digests(session)
            ]
        return render_digest_list(items, site_name=site)

    @app.get("/digests/<day>")
    def digest_page(day: str):
        try:
            issue_date = date.fromisoformat(day)
        except ValueError:
            abort(404)
        if day != issue_date.isoformat():  # 20261126, 2026-W48-4: one address per digest
            abort(404)
        with session_scope(settings) as session:
            digest = store.digest_on(session, issue_date)
            if digest is None:
                abort(404)
            content = web_content(session, digest, base_url=settings.base_url)
        return render_web_digest(content, site_name=site)

    @app.route("/unsubscribe/<token>", methods=["GET", "POST"])
    # The RFC 8058 one-click POST carries no cookie, so CSRF is checked in the form branch only.
    @csrf.exempt
    def unsubscribe(token: str):
        try:
            public_id = read_token(settings.secret(), UNSUBSCRIBE, token)
        except InvalidToken:
            return page(
                "message.html.j2",
                400,
                title="This link is not valid",
                message="The unsubscribe link is broken or incomplete. Copy the whole link"
                " from the email, or use the link in a newer email.",
            )
        if request.method != "POST":
            # Never unsubscribe on GET or HEAD (Flask answers HEAD with this view too): mail
            # scanners and link previews fetch every link.
            return page("unsubscribe.html.j2", token=token, csrf_token=generate_csrf())
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            csrf.protect()
        source = "one-click" if one_click else "web"
        with session_scope(settings) as session:
            subscriber = store.subscriber_by_public_id(session, public_id)
            if subscriber is not None:
                store.set_status(session, subscriber, SubscriberStatus.unsubscribed, source)
        if one_click:
            # RFC 8058: answer 200 directly, no redirect, no page to render.
            return Response("You are unsubscribed.\n", 200, mimetype="text/plain")
        return page(
            "message.html.j2",
            title="You are unsubscribed",
            message="You will get no more digests. We are sorry to see you go.",
        )

    return app
