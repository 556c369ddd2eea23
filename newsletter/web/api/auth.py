"""Who may call the API: a token the operator made (`newsletter tokens create`), presented as
`Authorization: Bearer <token>`, holding the scope each operation needs; and how often
(`NEWSLETTER_API_RATE_LIMIT` per token, with Flask-Limiter)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Flask, Response, g, request
from flask_limiter import HeaderNames, Limiter
from flask_smorest import Blueprint

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.intake.api_tokens import grants, token_hash
from newsletter.web.api.problems import from_error, problem
from newsletter.web.common import API_PREFIX, SETTINGS_KEY, is_api_request, settings

REALM = 'Bearer realm="newsletter-api"'


class Refused(Exception):
    """A request the API turns away before its view runs (401, 403)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate() -> None:
    """Find the request's token (`g.api_scopes`), or refuse it with 401; note its use."""
    secret = presented_token()
    if secret is None:
        raise Refused(unauthorized("This request carries no API token.", 'error="invalid_request"'))
    with session_scope(settings()) as session:
        token = store.usable_api_token(session, secret)
        if token is None:
            raise Refused(
                unauthorized("The API token is unknown or revoked.", 'error="invalid_token"')
            )
        store.note_api_token_use(session, token)
        g.api_scopes, g.api_token_name = list(token.scopes), token.name


def unauthorized(detail: str, error: str) -> Response:
    return problem(
        401, detail, kind="unauthorized", headers={"WWW-Authenticate": f"{REALM}, {error}"}
    )


def requires(scope: str, *errors: int) -> Callable:
    """A view that needs `scope`: checked before it runs (after the token), and stated in the
    OpenAPI document as the operation's security requirement, with the problems it may answer
    besides 401, 403 and 429 (`errors`)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def checked(*args, **kwargs):
            if not grants(g.api_scopes, scope):
                raise Refused(
                    problem(
                        403,
                        f"This operation needs the scope {scope}; the token"
                        f" {g.api_token_name!r} has {' '.join(g.api_scopes) or 'none'}.",
                        kind="forbidden",
                        headers={
                            "WWW-Authenticate": f'{REALM}, error="insufficient_scope",'
                            f' scope="{scope}"'
                        },
                    )
                )
            return view(*args, **kwargs)

        return Blueprint.doc(
            security=[{"bearerAuth": [scope]}],
            responses={
                str(status): problem_reference(str(status)) for status in (401, 403, 429, *errors)
            },
        )(checked)

    return decorate


def problem_reference(status: str) -> dict:
    return {"$ref": f"#/components/responses/{PROBLEM_RESPONSES[status]}"}


PROBLEM_RESPONSES = {
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "415": "UnsupportedMediaType",
    "422": "InvalidInput",
    "429": "TooManyRequests",
    "503": "Unavailable",
}


# ---------------------------------------------------------------- the rate limit


def rate_key() -> str:
    """Requests are counted per token: by its SHA-256, which names one token as its id does
    and is known before the database is asked; without a token, per address."""
    secret = presented_token()
    if secret is None:
        return f"address:{request.remote_addr}"
    return f"token:{token_hash(secret)}"


def make_limiter(app: Flask, exempt: set[str]) -> Limiter:
    """Counts every API request of a token together (all operations), but `exempt`'s."""
    config = app.config[SETTINGS_KEY]
    limiter = Limiter(
        rate_key,
        app=app,
        application_limits=[lambda: settings().api_rate_limit],
        storage_uri=storage_uri(config.redis_url.get_secret_value() if config.redis_url else None),
        key_prefix="newsletter-api",
        headers_enabled=True,
        # Retry-After only on a 429 (problems), not on every answer as Flask-Limiter would.
        header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"},
        strategy="fixed-window",
    )
    limiter.request_filter(lambda: not is_api_request() or request.endpoint in exempt)
    return limiter


def storage_uri(redis_url: str | None) -> str:
    """Where the counts live: the queue's Redis (shared by every process), else memory."""
    if redis_url is None:
        return "memory://"
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


# ---------------------------------------------------------------- a resource's blueprint

BODY_TYPES = {"application/json"}
"""What a request body may be; an endpoint that takes another (the CSV import) says so."""


def resource(name: str, description: str, *, url_prefix: str | None = None) -> Blueprint:
    """The blueprint of one resource under /api/v1/: every request token-checked first."""
    blueprint = Blueprint(
        f"api_{name}",
        __name__,
        url_prefix=url_prefix or f"{API_PREFIX}/{name}",
        description=description,
    )
    blueprint.before_request(authenticate)
    blueprint.before_request(refuse_unknown_body)
    blueprint.register_error_handler(NewsletterError, from_error)
    return blueprint


BODY_TYPES_OF: dict[str, set[str]] = {}
"""Endpoints whose body is not JSON, and what it may be."""


def refuse_unknown_body() -> None:
    """415 for a body that is not of a type the endpoint reads (JSON, unless it says)."""
    has_body = (request.content_length or 0) > 0
    allowed = BODY_TYPES_OF.get(request.endpoint or "", BODY_TYPES)
    if has_body and request.mimetype not in allowed:
        raise Refused(
            problem(
                415,
                f"This operation reads {' or '.join(sorted(allowed))}, not"
                f" {request.mimetype or 'a body without a Content-Type'}.",
            )
        )
