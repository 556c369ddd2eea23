"""The operator's preview of any subscriber's digest: `/admin/preview?email=…`.

Open with the admin token (NEWSLETTER_ADMIN_TOKEN, as `Authorization: Bearer …` or `?token=`,
compared in constant time) or from this machine (127.0.0.0/8, ::1) when NEWSLETTER_ADMIN_LOCALHOST
allows. A request a proxy forwarded (it says so in X-Forwarded-For, Forwarded or X-Real-IP) is
never taken as local, whatever address it came from: behind a proxy on the same machine every
request comes from 127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, request

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import UnknownSubscriber
from newsletter.render import preview
from newsletter.web.common import message, page, settings

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:;"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
)
"""The email's own HTML, styled inline as emails are: inline styles, and nothing else runs."""


@blueprint.before_request
def admins_only():
    if not authorised(settings()):
        return message(
            "Not allowed",
            "The admin pages need the admin token, or a connection from this machine.",
            403,
        )
    return None


def authorised(config: Settings) -> bool:
    """Whether this request carries the admin token or comes straight from this machine."""
    expected = config.admin_token.get_secret_value() if config.admin_token else ""
    given = request.args.get("token", "")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = credentials.strip()
    if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    return config.admin_localhost and _from_this_machine()


def _from_this_machine() -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@blueprint.get("/preview")
def preview_page():
    email = request.args.get("email", "").strip()
    # A token given in the address rides along in the form, so the next preview opens too.
    token = request.args.get("token", "")
    if not email:
        return page("admin_preview.html.j2", email="", token=token, error="")
    config = settings()
    try:
        with session_scope(config) as session:
            html, _label = preview.preview_html(session, config, email, ())
    except UnknownSubscriber:
        error = "No subscriber has that address."
        return page("admin_preview.html.j2", 404, email=email, token=token, error=error)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Robots-Tag"] = "noindex"
    return response
