"""Across the web app: tokens open only what they were made for, every form has its CSRF
token and labels, every page its language and security headers."""

from __future__ import annotations

import pytest
from lxml import html as lxml_html

from newsletter import tokens
from tests.helpers import DAY1
from tests.web_helpers import app_after_a_digest, public_id, state

ADA = "ada@example.org"


@pytest.fixture
def app(settings, cli, example_topics):
    return app_after_a_digest(settings, cli, ADA)


@pytest.fixture
def client(app):
    return app.test_client()


def _token(settings, purpose: str) -> str:
    if purpose == "confirm":
        value = {"id": public_id(settings, ADA), "topics": [1], "lang": "en", "sent": 0}
        return tokens.make_token(settings.secret(), purpose, value)
    return tokens.make_token(settings.secret(), purpose, public_id(settings, ADA))


ROUTES = {
    "unsubscribe": "/unsubscribe/{}",
    "preferences": "/preferences/{}",
    "view": f"/digests/{DAY1}/for/{{}}",
    "confirm": "/confirm/{}",
}


def test_a_token_opens_only_what_it_was_made_for(settings, client, subtests):
    for made_for in ROUTES:
        token = _token(settings, made_for)
        for purpose, route in ROUTES.items():
            if purpose == made_for:
                continue
            with subtests.test(f"{made_for} token at {purpose}"):
                answer = client.get(route.format(token))
                assert answer.status_code == 400
                assert "This link is not valid" in answer.get_data(as_text=True)
    # And each opens its own page (the confirm token above names no real request).
    for purpose in ("unsubscribe", "preferences", "view"):
        assert client.get(ROUTES[purpose].format(_token(settings, purpose))).status_code == 200
    assert state(settings, ADA).status == "active"


def _pages(settings) -> list[str]:
    return [
        "/subscribe",
        "/digests/",
        f"/digests/{DAY1}",
        f"/digests/{DAY1}/slam",
        ROUTES["view"].format(_token(settings, "view")),
        ROUTES["unsubscribe"].format(_token(settings, "unsubscribe")),
        ROUTES["preferences"].format(_token(settings, "preferences")),
        "/admin/preview",
        "/nowhere",
        "/confirm/nonsense",
    ]


def test_every_page_has_a_language_labels_and_csrf_tokens(settings, client, subtests):
    for path in _pages(settings):
        with subtests.test(path):
            document = lxml_html.fromstring(client.get(path).data)
            assert document.get("lang"), "no lang on <html>"
            assert document.findtext(".//title").strip()
            assert len(document.findall(".//h1")) == 1
            labelled = {label.get("for") for label in document.iter("label")}
            for control in document.xpath("//input[not(@type='hidden')] | //select | //textarea"):
                assert control.get("id") in labelled or control.get("aria-label"), (
                    lxml_html.tostring(control)
                )
            for form in document.iter("form"):
                if form.get("method", "get").lower() == "post":
                    assert form.xpath(".//input[@name='csrf_token' and @value!='']")


SECURED = [
    ("GET", "/subscribe"),
    ("POST", "/subscribe"),
    ("GET", "/confirm/nonsense"),
    ("POST", "/confirm/nonsense"),
    ("GET", "/preferences/nonsense"),
    ("POST", "/preferences/nonsense"),
    ("GET", "/feed.xml"),
    ("GET", "/topics/slam/feed.xml"),
    ("GET", "/topics/nothing/feed.xml"),
    ("GET", f"/digests/{DAY1}/slam"),
    ("GET", f"/digests/{DAY1}/for/nonsense"),
    ("GET", "/admin/preview"),
    ("PUT", "/subscribe"),
]


def test_security_headers_everywhere(client, subtests):
    for method, path in SECURED:
        with subtests.test(f"{method} {path}"):
            response = client.open(path, method=method)
            assert response.status_code < 500
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/subscribe", "/confirm/x", "/preferences/x", "/admin/preview"])
def test_personal_pages_are_never_cached(client, path):
    assert client.get(path).headers["Cache-Control"] == "no-store"
