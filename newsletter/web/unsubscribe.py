"""Unsubscribing: a page with a button, its form POST, and the RFC 8058 one-click POST.

GET (and HEAD) never unsubscribe: mail scanners and link previews fetch every link. The
one-click POST carries no cookie, so only the form branch checks CSRF; it answers 200 at once,
without a redirect. An unknown subscriber gets exactly the answers a real one gets.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask_wtf.csrf import generate_csrf

from newsletter import store
from newsletter.db import connection_scope
from newsletter.tokens import PREFERENCES, UNSUBSCRIBE, make_token
from newsletter.web.common import csrf, invalid_link, message, page, settings, token_value

blueprint = Blueprint("unsubscribe", __name__)


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    public_id = token_value(UNSUBSCRIBE, token)
    if public_id is None:
        return invalid_link("unsubscribe")
    if request.method != "POST":
        # The preferences page is offered instead of leaving; its link is made from the id in
        # the token, without asking the database, so the page is the same for anyone.
        preferences = f"/preferences/{make_token(settings().secret(), PREFERENCES, public_id)}"
        return page(
            "unsubscribe.html.j2",
            token=token,
            csrf_token=generate_csrf(),
            preferences_url=preferences,
        )
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        csrf.protect()
    with connection_scope(settings()) as connection:
        store.unsubscribe_public_id(connection, public_id, "one-click" if one_click else "web")
    if one_click:
        # RFC 8058: answer 200 directly, no redirect, no page to render.
        return Response("You are unsubscribed.\n", 200, mimetype="text/plain")
    return message(
        "You are unsubscribed",
        "You will get no more digests. We are sorry to see you go. Changed your mind? The"
        " Preferences link in any of our emails lets you come back.",
    )
