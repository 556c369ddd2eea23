"""The operator's preview: only with the admin token, or from this machine."""

from __future__ import annotations

import pytest

from newsletter.web import create_app
from tests.helpers import paper, set_env, store_papers, subscribe

ADA = "ada@example.org"
TOKEN = "a-long-admin-token-0123456789"
REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


@pytest.fixture
def config(settings, cli, example_topics, monkeypatch):
    subscribe(cli, ADA, "NeRF")
    store_papers(settings, "NeRF", paper(1, "<script>alert(1)</script> Radiance"))
    return set_env(monkeypatch, ADMIN_TOKEN=TOKEN)


@pytest.fixture
def client(config):
    return create_app(config).test_client()


def preview(client, query: str = f"?email={ADA}", **kwargs):
    return client.get(f"/admin/preview{query}", **kwargs)


def test_from_this_machine_the_preview_opens(client):
    for address in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        answer = preview(client, environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 200, address
    html = answer.get_data(as_text=True)
    assert "Radiance" in html and "<script>alert(1)" not in html
    assert "/unsubscribe/" in html and "/preferences/" in html and "/for/" in html


def test_the_preview_is_the_subscribers_email_under_a_locked_down_policy(client):
    answer = preview(client)
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Robots-Tag"] == "noindex"


def test_from_elsewhere_only_with_the_token(client, subtests):
    assert preview(client, environ_base=REMOTE).status_code == 403
    cases = {
        "bearer header": ({"Authorization": f"Bearer {TOKEN}"}, ""),
        "lower-case scheme": ({"Authorization": f"bearer {TOKEN}"}, ""),
        "query": ({}, f"&token={TOKEN}"),
    }
    for kind, (headers, extra) in cases.items():
        with subtests.test(kind):
            answer = preview(client, f"?email={ADA}{extra}", headers=headers, environ_base=REMOTE)
            assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers, extra",
    [
        ({"Authorization": "Bearer wrong"}, ""),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, ""),
        ({"Authorization": f"Bearer {TOKEN}x"}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),
        ({"Authorization": "Bearer "}, ""),
        ({}, "&token="),
        ({}, "&token=wrong"),
        ({"X-Forwarded-For": "127.0.0.1"}, ""),
    ],
)
def test_wrong_tokens_and_forged_origins_are_refused(client, headers, extra):
    answer = preview(client, f"?email={ADA}{extra}", headers=headers, environ_base=REMOTE)
    assert answer.status_code == 403
    assert "Radiance" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_request_a_proxy_forwarded_is_not_local(client, header):
    # Behind a proxy on the same machine, every request comes from 127.0.0.1.
    answer = preview(client, headers={header: "203.0.113.7"})
    assert answer.status_code == 403


def test_without_a_token_set_no_token_opens_it(settings, cli, example_topics, monkeypatch):
    subscribe(cli, ADA, "NeRF")
    client = create_app(set_env(monkeypatch, ADMIN_TOKEN="")).test_client()
    for query in ("?token=", f"?email={ADA}&token="):
        assert client.get(f"/admin/preview{query}", environ_base=REMOTE).status_code == 403
    assert client.get("/admin/preview").status_code == 200  # from this machine


def test_localhost_access_can_be_turned_off(config, monkeypatch):
    client = create_app(set_env(monkeypatch, ADMIN_LOCALHOST="false")).test_client()
    assert preview(client).status_code == 403
    assert preview(client, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_form_and_an_unknown_address(client):
    page = preview(client, "")
    assert page.status_code == 200
    assert '<label for="email-field">' in page.get_data(as_text=True)
    missing = preview(client, "?email=nobody@example.org")
    assert missing.status_code == 404 and "No subscriber" in missing.get_data(as_text=True)
    kept = preview(client, f"?token={TOKEN}", environ_base=REMOTE).get_data(as_text=True)
    assert f'name="token" value="{TOKEN}"' in kept  # the next preview opens too
