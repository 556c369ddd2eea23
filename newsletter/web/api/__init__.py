"""The JSON API under /api/v1/, for programs: a lab website's sign-up form, a bot, an admin
script. One module per resource (`topics`, `subscribers`, `channels`, `digests` with papers,
`job`), each a flask-smorest blueprint whose marshmallow schemas (`schemas`) make the OpenAPI
3.1 document (/api/v1/openapi.json, browsable at /api/v1/docs: `docs`).

Every request needs a token with the operation's scope and is rate-limited per token
(`auth`); every error is an RFC 9457 problem (`problems`), the HTML pages keeping theirs. The
views are thin over `intake` and `store`, which the command line calls too: the same checks,
the same words.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.http import HTTP_STATUS_CODES

from newsletter.web.api import channels, digests, docs, job, subscribers, topics
from newsletter.web.api.auth import PROBLEM_RESPONSES, Refused, make_limiter
from newsletter.web.api.problems import LIMITER, PROBLEM, pages_or_problems
from newsletter.web.api.schemas import Problem
from newsletter.web.common import API_PREFIX, csrf

BLUEPRINTS = (
    topics.blueprint,
    subscribers.blueprint,
    channels.blueprint,
    digests.blueprint,
    digests.papers,
    job.blueprint,
)
DOCS_ENDPOINTS = {"api-docs.openapi_json", "api_docs"}
"""The document and its page: open to anyone (they describe the API, they hold no data), and
not rate-limited."""
DESCRIPTION = (
    "The arXiv daily digest's JSON API: topics, subscribers, digests, papers and the daily job."
    " Authenticate with `Authorization: Bearer <token>` (`newsletter tokens create`); each"
    " operation names the scope it needs. Errors are RFC 9457 problem details."
)


class ProblemApi(Api):
    """flask-smorest's Api without its app-wide HTTPException handler, which would answer the
    site's HTML pages in JSON too: API errors are answered by `problems`, for API paths only.
    Its error responses are documented as what they are: problem details."""

    ERROR_SCHEMA = Problem
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists the problems it may answer

    def _register_error_handlers(self) -> None:
        pass


def init_api(app: Flask) -> None:
    app.config.update(
        API_TITLE="arXiv digest API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": DESCRIPTION}},
    )
    api = ProblemApi(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `newsletter tokens create --name NAME --scope SCOPE`.",
        },
    )
    for status, name in PROBLEM_RESPONSES.items():
        api.spec.components.response(
            name,
            {
                "description": f"{HTTP_STATUS_CODES[int(status)]}: a problem details document",
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        )
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)  # a token in a header, no cookie: nothing for CSRF to forge
    app.add_url_rule(f"{API_PREFIX}/docs", "api_docs", docs.docs_page)
    app.register_error_handler(Refused, lambda refused: refused.response)
    app.extensions[LIMITER] = make_limiter(app, exempt=DOCS_ENDPOINTS)


__all__ = ["init_api", "pages_or_problems"]
