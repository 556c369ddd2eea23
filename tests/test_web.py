"""The web app: unsubscribe pages (RFC 8058 one-click included), the archive, static files."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from itsdangerous import URLSafeTimedSerializer
from werkzeug.serving import make_server

from newsletter import store, tokens
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.models import SubscriberStatus, new_public_id
from newsletter.web import create_app
from tests.helpers import DAY1, DAY2, paper, store_papers, subscribe

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
STYLESHEET = Path(__file__).resolve().parents[1] / "templates" / "web" / "static" / "style.css"


@pytest.fixture
def app(settings, cli, example_topics):
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, "bo@example.org", "NeRF")
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


def public_id(settings, address: str) -> str:
    with session_scope(settings) as session:
        return store.get_subscriber(session, address).public_id


def link(settings, address: str) -> str:
    """The path of a subscriber's unsubscribe link, as the email carries it."""
    url = tokens.unsubscribe_url(settings.base_url, settings.secret(), public_id(settings, address))
    return urlsplit(url).path


def state(settings, address: str) -> tuple[SubscriberStatus, list[tuple[str, str]]]:
    """A subscriber's status and event history (kind, source)."""
    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, address)
        events = [(event.kind, event.source) for event in store.events_of(session, subscriber)]
        return subscriber.status, events


def one_click(client, path: str):
    """The POST a mail client sends for RFC 8058 one-click unsubscribe."""
    return client.post(path, data=ONE_CLICK, content_type=FORM)


def fresh_client(app):
    """A client with no cookies, like a mail provider's unsubscribe robot."""
    return app.test_client(use_cookies=False)


ACTIVE = (SubscriberStatus.active, [("subscribed", "cli")])


# ---------------------------------------------------------------- unsubscribe: GET and forms


def test_get_shows_a_form_and_changes_nothing(settings, client):
    path = link(settings, "ada@example.org")
    for _ in range(3):  # scanners and link previews fetch links more than once
        page = client.get(path)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert f'<form method="post" action="{path}">' in html
        assert '<button type="submit"' in html and CSRF_FIELD.search(html)
    assert client.head(path).status_code == 200
    assert state(settings, "ada@example.org") == ACTIVE


def test_head_and_options_change_nothing(settings, client, app):
    path = link(settings, "ada@example.org")
    for request in (client, fresh_client(app)):
        assert request.head(path).status_code == 200
        assert request.head(path, data=ONE_CLICK, content_type=FORM).status_code == 200
        assert request.options(path).status_code == 200
    assert state(settings, "ada@example.org") == ACTIVE


def test_form_post_without_csrf_token_is_refused(settings, client, app):
    path = link(settings, "ada@example.org")
    assert client.post(path).status_code == 400
    assert client.post(path, data={"List-Unsubscribe": "Yes"}).status_code == 400
    # A token from a page another browser loaded is no good without that browser's cookie.
    token = CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)
    refused = fresh_client(app).post(path, data={"csrf_token": token})
    assert refused.status_code == 400 and b"Please try again" in refused.data
    assert client.post(path, data={"csrf_token": "forged"}).status_code == 400
    assert state(settings, "ada@example.org") == ACTIVE


def test_form_post_with_the_pages_csrf_token_unsubscribes(settings, client):
    path = link(settings, "ada@example.org")
    token = CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)
    done = client.post(path, data={"csrf_token": token})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.get_data(as_text=True)
    status, events = state(settings, "ada@example.org")
    assert status == SubscriberStatus.unsubscribed and events[-1] == ("unsubscribed", "web")
    assert state(settings, "bo@example.org") == ACTIVE


# ---------------------------------------------------------------- RFC 8058 one-click


def test_one_click_post_unsubscribes_at_once_without_redirect(settings, app):
    path = link(settings, "ada@example.org")
    answer = one_click(fresh_client(app), path)
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert "Set-Cookie" not in answer.headers
    status, events = state(settings, "ada@example.org")
    assert status == SubscriberStatus.unsubscribed
    assert events == [("subscribed", "cli"), ("unsubscribed", "one-click")]

    again = one_click(fresh_client(app), path)
    assert (again.status_code, again.data) == (200, answer.data)
    assert state(settings, "ada@example.org") == (status, events)  # no second event
    assert state(settings, "bo@example.org") == ACTIVE


def test_one_click_accepts_a_multipart_body(settings, app):
    path = link(settings, "ada@example.org")
    answer = fresh_client(app).post(
        path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert answer.status_code == 200
    assert state(settings, "ada@example.org")[0] == SubscriberStatus.unsubscribed


# ---------------------------------------------------------------- bad tokens


def _tampered(secret: str, public: str) -> str:
    token = tokens.make_token(secret, "unsubscribe", public)
    return ("A" if token[0] != "A" else "B") + token[1:]


BAD_TOKENS = {
    "tampered": _tampered,
    "truncated": lambda secret, public: tokens.make_token(secret, "unsubscribe", public)[:-6],
    "signature cut off": lambda s, p: tokens.make_token(s, "unsubscribe", p).rsplit(".", 1)[0],
    "garbage": lambda secret, public: "not-a-token",
    "dots": lambda secret, public: "a.b.c",
    "long": lambda secret, public: "x" * 2000,
    "another purpose": lambda secret, public: tokens.make_token(secret, "confirm", public),
    "another secret": lambda secret, public: tokens.make_token(
        "another secret", "unsubscribe", public
    ),
    "not a string": lambda secret, public: URLSafeTimedSerializer(secret, salt="unsubscribe").dumps(
        [public]
    ),
}


def test_bad_tokens_get_one_generic_page_and_change_nothing(settings, client, app, subtests):
    reference = fresh_client(app).get("/unsubscribe/not-a-token")
    assert reference.status_code == 400
    assert "This link is not valid" in reference.get_data(as_text=True)
    # A valid CSRF token of this client, so that only the unsubscribe token is wrong.
    csrf = CSRF_FIELD.search(client.get(link(settings, "bo@example.org")).get_data(as_text=True))

    for kind, make in BAD_TOKENS.items():
        with subtests.test(kind):
            token = make(settings.secret(), public_id(settings, "ada@example.org"))
            path = f"/unsubscribe/{token}"
            page = client.get(path)
            answers = [
                page,
                client.head(path),
                one_click(fresh_client(app), path),
                client.post(path, data={"csrf_token": csrf.group(1)}),
            ]
            assert [answer.status_code for answer in answers] == [400] * 4
            for answer in (page, *answers[2:]):
                assert answer.data == reference.data
            assert token not in page.get_data(as_text=True)
    assert state(settings, "ada@example.org") == ACTIVE
    assert state(settings, "bo@example.org") == ACTIVE


# ---------------------------------------------------------------- no enumeration


PREFERENCES_LINK = re.compile(r'href="/preferences/[^"]+"')


def _without_tokens(html: str, token: str) -> str:
    # The page links the preferences page with a token made from the link's own id, whoever
    # that is: it differs from one link to another, and is masked like the others.
    html = PREFERENCES_LINK.sub('href="/preferences/TOKEN"', html)
    return CSRF_FIELD.sub("CSRF", html.replace(token, "TOKEN"))


def test_unknown_and_purged_subscribers_look_like_real_ones(settings, cli, app):
    secret = settings.secret()
    real = tokens.make_token(secret, "unsubscribe", public_id(settings, "ada@example.org"))
    purged = tokens.make_token(secret, "unsubscribe", public_id(settings, "bo@example.org"))
    cli("subscribers", "remove", "bo@example.org", "--purge")
    unknown = tokens.make_token(secret, "unsubscribe", new_public_id())

    def answers(token: str):
        path = f"/unsubscribe/{token}"
        browser = app.test_client()
        page = browser.get(path)
        csrf = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
        return (
            (page.status_code, _without_tokens(page.get_data(as_text=True), token)),
            [one_click(fresh_client(app), path) for _ in range(2)],
            browser.post(path, data={"csrf_token": csrf}),
        )

    def shape(response):
        return (
            response.status_code,
            response.data,
            response.mimetype,
            "Set-Cookie" in response.headers,
            "Location" in response.headers,
        )

    for token in (unknown, purged):
        page, clicks, form = answers(token)
        real_page, real_clicks, real_form = answers(real)
        assert page == real_page and page[0] == 200
        assert [shape(c) for c in clicks] == [shape(c) for c in real_clicks]
        assert shape(clicks[0])[:2] == (200, real_clicks[0].data)
        assert (form.status_code, form.data) == (real_form.status_code, real_form.data)
    assert state(settings, "ada@example.org")[0] == SubscriberStatus.unsubscribed


# ---------------------------------------------------------------- security headers


def _check_security_headers(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


EVERY_KIND_OF_ANSWER = [
    ("GET", "/", 302),
    ("GET", "/healthz", 200),
    ("GET", "/digests/", 200),
    ("GET", "/digests/2026-11-26", 404),
    ("GET", "/digests/not-a-date", 404),
    ("GET", "/static/style.css", 200),
    ("GET", "/static/missing.css", 404),
    ("GET", "/nowhere", 404),
    ("GET", "/unsubscribe/not-a-token", 400),
    ("POST", "/unsubscribe/not-a-token", 400),
    ("PUT", "/unsubscribe/not-a-token", 405),
    ("POST", "/digests/", 405),
]


def test_security_headers_on_every_response(client, subtests):
    for method, path, status in EVERY_KIND_OF_ANSWER:
        with subtests.test(f"{method} {path}"):
            response = client.open(path, method=method)
            assert response.status_code == status
            _check_security_headers(response)


def test_security_headers_on_unsubscribe_answers(settings, client, app):
    path = link(settings, "ada@example.org")
    page = client.get(path)
    refused = client.post(path)  # no CSRF token
    clicked = one_click(fresh_client(app), path)
    assert [r.status_code for r in (page, refused, clicked)] == [200, 400, 200]
    for response in (page, refused, clicked):
        _check_security_headers(response)
        # The page holds a CSRF token and the link is someone's: no shared cache keeps them.
        assert "no-store" in response.headers["Cache-Control"]
        assert response.headers["Referrer-Policy"] == "no-referrer"


# ---------------------------------------------------------------- the archive


@pytest.fixture
def sent(settings, app):
    store_papers(settings, "SLAM", paper(1, "<script>alert(1)</script> Hostile SLAM"))
    store_papers(settings, "NeRF", paper(2, "PanGu-$π$: radiance fields"), paper(3))
    store_papers(settings, "MLLM", paper(4, "A paper no subscriber follows"))
    send.send(settings, DAY1)
    store_papers(settings, "SLAM", paper(5, "The next day"))
    send.send(settings, DAY2)
    return app


def test_archive_lists_digests_newest_first(client, sent):
    page = client.get("/digests/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    day1, day2 = f'href="/digests/{DAY1}"', f'href="/digests/{DAY2}"'
    assert day2 in html and day1 in html and html.index(day2) < html.index(day1)
    counts = re.findall(r'<td class="numeric">(\d+)</td>', html)
    assert counts == ["1", "4"]


def test_archive_without_digests(client):
    page = client.get("/digests/")
    assert page.status_code == 200 and "No digests yet" in page.get_data(as_text=True)


def test_digest_page_shows_every_topic_escaped_and_readable(settings, client, sent):
    page = client.get(f"/digests/{DAY1}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for slug in ("slam", "nerf", "mllm"):
        assert f'id="{slug}"' in html and f'href="#{slug}"' in html
    section = {
        slug: html[html.index(f'id="{slug}"') :].split("</section>")[0]
        for slug in ("slam", "nerf", "mllm")
    }
    assert "arXiv:2611.00001" in section["slam"]
    assert "arXiv:2611.00002" in section["nerf"] and "arXiv:2611.00003" in section["nerf"]
    assert "A paper no subscriber follows" in section["mllm"]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hostile SLAM" in html
    assert "PanGu-π: radiance fields" in html and "$π$" not in html
    assert "The next day" not in html  # the next day's paper is in the next digest
    assert "The next day" in client.get(f"/digests/{DAY2}").get_data(as_text=True)


BAD_DAYS = [
    "2026-11-28",  # no digest that day
    "1999-01-01",
    "not-a-date",
    "2026-13-45",
    "2026-02-30",
    "20261126",  # another spelling of a day that has a digest: one address per digest
    "2026-W48-4",
    "9" * 400,
    "%00",
]


def test_bad_or_unknown_digest_dates_are_404(client, sent, subtests):
    assert client.get(f"/digests/{DAY1}").status_code == 200
    for day in BAD_DAYS:
        with subtests.test(day):
            page = client.get(f"/digests/{day}")
            assert page.status_code == 404
            assert "Not found" in page.get_data(as_text=True)


# ---------------------------------------------------------------- static files and the rest


def test_stylesheet_is_served_as_css(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert response.data == STYLESHEET.read_bytes()


TRAVERSALS = [
    "/static/../../newsletter/config.py",
    "/static/..%2f..%2fnewsletter%2fconfig.py",
    "/static/%2e%2e/%2e%2e/newsletter/config.py",
    "/static/../web/base.html.j2",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
]


def test_static_files_never_leave_their_folder(client, subtests):
    for path in TRAVERSALS:
        with subtests.test(path):
            # Werkzeug answers `//` with a redirect that merges the slashes: follow it.
            response = client.get(path, follow_redirects=True)
            assert response.status_code == 404
            assert b"SECRET_KEY_FILE" not in response.data and b"root:" not in response.data
            assert b"{% block" not in response.data


def test_home_redirects_to_the_archive(client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/digests/"


# ---------------------------------------------------------------- a real HTTP server


@pytest.fixture
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_one_click_over_http_as_gmail_sends_it(settings, live_server):
    url = live_server + link(settings, "ada@example.org")
    with requests.Session() as browser:
        assert browser.get(url, timeout=5).status_code == 200
        assert browser.head(url, timeout=5).status_code == 200
    assert state(settings, "ada@example.org") == ACTIVE

    answer = requests.post(
        url,
        data=ONE_CLICK,
        headers={"Content-Type": FORM},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 200 and not answer.history and not answer.cookies
    assert answer.headers["X-Frame-Options"] == "DENY"
    status, events = state(settings, "ada@example.org")
    assert status == SubscriberStatus.unsubscribed and events[-1] == ("unsubscribed", "one-click")
