"""The JSON API's description and a real server: the OpenAPI 3.1 document is valid and lists
every /api/v1/ route the app has (method and path), its page works with no script and no
other origin, and a few calls go through gunicorn as the Procfile runs it."""

from __future__ import annotations

import re

import pytest
import requests
from openapi_spec_validator import validate

from newsletter.web import create_app
from tests.api_helpers import PROBLEM, ApiClient
from tests.web_helpers import running

ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DESCRIBING = {"/api/v1/openapi.json", "/api/v1/docs"}
"""The document and its page: routes of the API that describe it, not operations in it."""


def flask_operations(app) -> set[tuple[str, str]]:
    """(method, path in OpenAPI's spelling) of every /api/v1/ route of the app."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in DESCRIBING:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        found |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


@ONE_DATABASE
def test_the_openapi_document_is_valid_and_lists_every_route(settings):
    app = create_app(settings)
    answer = app.test_client().get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    spec = answer.get_json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)  # raises on anything OpenAPI 3.1 does not allow
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    routes = flask_operations(app)
    assert len(routes) >= 19
    assert documented == routes
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            (requirement,) = operation["security"]
            (scope,) = requirement["bearerAuth"]
            assert re.fullmatch(r"(topics|subscribers|digests|papers|job):(read|write|run)", scope)
            for status in ("401", "403", "429"):
                assert status in operation["responses"], f"{method} {path} {status}"
    import_body = spec["paths"]["/api/v1/subscribers/import"]["post"]["requestBody"]
    assert "text/csv" in import_body["content"]


@ONE_DATABASE
def test_the_docs_page_lists_every_operation_with_no_script_and_no_other_origin(settings):
    app = create_app(settings)
    page = app.test_client().get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script" not in html
    # Nothing loaded from another origin (the footer's credit to arXiv is a plain link).
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!arxiv\.org/")""", html)
    assert not re.search(r"<link[^>]+https?://", html)
    assert "style=" not in html  # the site's CSP allows no inline style
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for method, path in flask_operations(app):
        assert f"<code>{method} {path}</code>" in html, (method, path)
    assert "<code>subscribers:write</code>" in html


def test_the_api_through_gunicorn(settings, cli, example_topics, tmp_path):
    token = ApiClient(None, cli).token("*", name="e2e")
    auth = {"Authorization": f"Bearer {token}"}
    with running("gunicorn", tmp_path / "gunicorn.log") as port:
        base = f"http://127.0.0.1:{port}/api/v1"
        topics = requests.get(f"{base}/topics", headers=auth, timeout=10)
        assert topics.status_code == 200 and "SLAM" in [t["name"] for t in topics.json()]
        assert topics.headers["Cache-Control"] == "no-store"
        made = requests.post(
            f"{base}/subscribers",
            json={"email": "ada@example.org", "topics": ["SLAM"]},
            headers=auth,
            timeout=10,
        )
        assert made.status_code == 201, made.text
        location = made.headers["Location"]
        assert location.endswith(f"/api/v1/subscribers/{made.json()['id']}")
        shown = requests.get(f"{base}/subscribers/{made.json()['id']}", headers=auth, timeout=10)
        assert shown.json()["email"] == "ada@example.org"
        chunked = requests.post(
            f"{base}/subscribers/import",
            data=iter([b"email,topics\n", b"bo@example.org,SLAM\n"]),
            headers={**auth, "Content-Type": "text/csv"},
            timeout=10,
        )
        assert chunked.json()["outcomes"] == {"added": 1}
        refused = requests.get(f"{base}/subscribers", timeout=10)
        assert refused.status_code == 401 and refused.headers["Content-Type"] == PROBLEM
        assert refused.json()["detail"] == "This request carries no API token."
        missing = requests.get(f"{base}/nothing", headers=auth, timeout=10)
        assert missing.status_code == 404 and missing.headers["Content-Type"] == PROBLEM
        document = requests.get(f"{base}/openapi.json", timeout=10)
        assert document.json()["openapi"] == "3.1.0"
        page = requests.get(f"http://127.0.0.1:{port}/nothing", timeout=10)
        assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
