"""The JSON API through Flask's test client: tokens and scopes on every operation, problem
details for every error, the same checks and words as the command line, paging and filters,
the CSV import's report, the daily job, the rate limit. (test_api_server.py: the OpenAPI
document and a real gunicorn.)"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from newsletter import store
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import ApiToken
from newsletter.web import create_app
from tests.api_helpers import PROBLEM, ApiClient, assert_problem
from tests.chat_servers import MATRIX_ROOM, MATRIX_TOKEN, ChatServer, Reply
from tests.helpers import PAPERS, add_subscribers, load_tasks, set_env, write_locked
from tests.web_helpers import public_id, state

ADA, BO = "ada@example.org", "bo@example.org"
ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def ran(arxiv, cli, settings):
    """The local arXiv's two topics (Alpha, Beta), Ada (both) and Bo (Beta), and one daily
    job run: a digest with papers and deliveries."""
    cli("run", "--inline")
    load_tasks()  # the queue of this test's var folder
    return get_settings()  # with the local arXiv's address


@pytest.fixture
def api(ran, cli) -> ApiClient:
    return ApiClient(create_app(ran).test_client(), cli)


def channel_id(settings, label: str) -> str:
    with session_scope(settings) as session:
        return store.get_channel(session, label).public_id


def digest_id(settings) -> int:
    with session_scope(settings) as session:
        return store.list_digests(session)[0].id


# ---------------------------------------------------------------- tokens (the CLI)


def test_a_token_is_shown_once_and_only_its_hash_is_kept(cli, settings):
    made = cli("tokens", "create", "--name", "lab-site", "--scope", "subscribers:write")
    token = made.stdout.strip()
    assert token.startswith("nlt_") and len(token) >= 4 + 43  # 256 bits, base64url
    assert "not shown again" in made.stderr
    with session_scope(settings) as session:
        row = session.scalar(select(ApiToken))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.scopes == ["subscribers:write"]
        stored = json.dumps([row.name, row.token_hash, row.scopes])
    assert token not in stored
    listed = cli("tokens", "list").output + cli("tokens", "list", "--json").output
    assert "lab-site" in listed and "subscribers:write" in listed and "never" in listed
    assert token not in listed
    second = cli("tokens", "create", "--name", "other", "-s", "topics:read").stdout.strip()
    assert second != token


def test_unknown_scopes_and_names_are_refused(cli, settings):
    refused = cli("tokens", "create", "--name", "x", "--scope", "subscribers:delete", ok=False)
    assert refused.exit_code == 1
    assert "unknown scope 'subscribers:delete'; known scopes: topics:read" in refused.output
    cli("tokens", "create", "--name", "x", "--scope", "*")
    again = cli("tokens", "create", "--name", "x", "--scope", "topics:read", ok=False)
    assert again.exit_code == 1 and "a token named 'x' exists already" in again.output
    missing = cli("tokens", "revoke", "nobody", ok=False)
    assert missing.exit_code == 1 and "no token named 'nobody'" in missing.output


# ---------------------------------------------------------------- every operation, every scope


def operations(settings, cli) -> list[tuple[str, str, str, dict, int]]:
    """(method, path, scope it needs, request options, status when allowed): every operation."""
    ada = public_id(settings, ADA)
    bo = public_id(settings, BO)
    # A channel whose webhook nobody answers: its test is posted, and answered "not posted".
    closed = "http://127.0.0.1:9/services/T0/B0/X"
    cli("channels", "add", "--platform", "slack", "--url", closed, "--name", "#c", "-t", "Alpha")
    channel = channel_id(settings, "#c")
    slack = {"platform": "slack", "url": "http://127.0.0.1:9/h", "name": "#n", "topics": ["Beta"]}
    digest = digest_id(settings)
    csv = {"data": "email,topics\ncy@example.org,Beta\n", "content_type": "text/csv"}
    return [
        ("GET", "/api/v1/topics", "topics:read", {}, 200),
        ("GET", "/api/v1/topics/Alpha", "topics:read", {}, 200),
        (
            "POST",
            "/api/v1/topics",
            "topics:write",
            {"json": {"name": "Gamma", "keywords": ["g"]}},
            201,
        ),
        ("PATCH", "/api/v1/topics/Gamma", "topics:write", {"json": {"description": "G"}}, 200),
        ("POST", "/api/v1/topics/Alpha/test", "topics:write", {}, 200),
        ("DELETE", "/api/v1/topics/Gamma", "topics:write", {}, 204),
        ("GET", "/api/v1/subscribers", "subscribers:read", {}, 200),
        ("GET", f"/api/v1/subscribers/{ada}", "subscribers:read", {}, 200),
        ("GET", f"/api/v1/subscribers/{ada}/events", "subscribers:read", {}, 200),
        (
            "POST",
            "/api/v1/subscribers",
            "subscribers:write",
            {"json": {"email": "di@example.org", "topics": ["Alpha"]}},
            201,
        ),
        (
            "PATCH",
            f"/api/v1/subscribers/{ada}",
            "subscribers:write",
            {"json": {"name": "Ada"}},
            200,
        ),
        ("POST", "/api/v1/subscribers/import", "subscribers:write", csv, 200),
        ("DELETE", f"/api/v1/subscribers/{bo}", "subscribers:write", {}, 204),
        ("GET", "/api/v1/channels", "subscribers:read", {}, 200),
        ("GET", f"/api/v1/channels/{channel}", "subscribers:read", {}, 200),
        ("POST", "/api/v1/channels", "subscribers:write", {"json": slack}, 201),
        ("POST", f"/api/v1/channels/{channel}/test", "subscribers:write", {}, 200),
        ("DELETE", f"/api/v1/channels/{channel}", "subscribers:write", {}, 204),
        ("GET", "/api/v1/digests", "digests:read", {}, 200),
        ("GET", f"/api/v1/digests/{digest}", "digests:read", {}, 200),
        ("GET", f"/api/v1/digests/{digest}/papers", "digests:read", {}, 200),
        ("GET", "/api/v1/papers?topic=Alpha", "papers:read", {}, 200),
        ("GET", "/api/v1/job", "job:read", {}, 200),
        ("POST", "/api/v1/job/run", "job:run", {}, 202),
    ]


OTHER_SCOPE = {
    "topics:read": "subscribers:write",
    "topics:write": "topics:read",
    "subscribers:read": "topics:write",
    "subscribers:write": "subscribers:read",
    "digests:read": "papers:read",
    "papers:read": "digests:read",
    "job:read": "digests:read",
    "job:run": "job:read",
}
"""For each scope, one that does not grant it (write never grants another resource; read never
grants write)."""


def test_every_operation_needs_a_valid_token_with_its_scope(api, ran, cli):
    revoked = api.token("*", name="revoked")
    cli("tokens", "revoke", "revoked")
    for method, path, scope, options, allowed in operations(ran, cli):
        where = f"{method} {path}"
        for token in (None, "nlt_not-a-token", revoked):
            refused = api.call(method, path, token, **options)
            body = assert_problem(refused, 401)
            assert refused.headers["WWW-Authenticate"].startswith("Bearer"), where
            assert body["type"].endswith("/unauthorized"), where
        wrong = api.token(OTHER_SCOPE[scope], name=f"wrong {where}")
        forbidden = assert_problem(api.call(method, path, wrong, **options), 403, scope)
        assert f"needs the scope {scope}" in forbidden["detail"], where
        right = api.token(scope, name=f"right {where}")
        answer = api.call(method, path, right, **options)
        assert answer.status_code == allowed, f"{where}: {answer.get_data(as_text=True)}"
        assert answer.headers["Cache-Control"] == "no-store", where
        if allowed != 204:
            assert answer.mimetype == "application/json", where


def test_write_implies_read_and_star_grants_all(api):
    for scope in ("topics:write", "*"):
        assert api.call("GET", "/api/v1/topics", api.token(scope)).status_code == 200
    assert api.call("GET", "/api/v1/job", api.token("job:run")).status_code == 200
    assert_problem(api.call("POST", "/api/v1/job/run", api.token("job:read")), 403, "job:run")


def test_using_a_token_notes_when_it_was_last_used(api, ran):
    token = api.token("topics:read", name="reader")
    with session_scope(ran) as session:
        assert (
            session.scalar(select(ApiToken.last_used_at).where(ApiToken.name == "reader")) is None
        )
    api.call("GET", "/api/v1/topics", token)
    with session_scope(ran) as session:
        assert session.scalar(select(ApiToken.last_used_at).where(ApiToken.name == "reader"))


# ---------------------------------------------------------------- problem details


def test_errors_are_problem_details_and_the_pages_keep_theirs(api):
    token = api.token("*")
    assert_problem(api.call("GET", "/api/v1/nowhere", token), 404)
    not_allowed = assert_problem(api.call("PUT", "/api/v1/topics", token), 405)
    assert not_allowed["title"] == "Method Not Allowed"
    assert_problem(
        api.call("POST", "/api/v1/topics", token, data="name=X", content_type="text/plain"),
        415,
        "reads application/json",
    )
    broken = assert_problem(
        api.call("POST", "/api/v1/topics", token, data="{", content_type="application/json"), 400
    )
    assert "errors" in broken
    fields = assert_problem(api.call("POST", "/api/v1/topics", token, json={"nme": "X"}), 422)
    assert set(fields["errors"]) == {"name", "nme"}
    assert_problem(api.call("GET", "/api/v1/topics?x=%00", token), 400)
    # The site's own pages stay HTML.
    page = api.client.get("/nowhere")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "<h1>Not found</h1>" in page.get_data(as_text=True)
    assert api.client.delete("/digests/").mimetype == "text/html"


@pytest.mark.parametrize(
    "cli_args, body, field",
    [
        (["--lang", "xx-nope"], {"language": "xx-nope"}, "language"),
        (["--hour", "25"], {"hour": 25}, "hour"),
        (["--tz", "Mars/Olympus"], {"timezone": "Mars/Olympus"}, "timezone"),
        (["--format", "pdf"], {"format": "pdf"}, "format"),
        (["--follow", "He"], {"follows": ["He"]}, "follows"),
        (["--cadence", "hourly"], {"cadence": "hourly"}, "cadence"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses_in_its_words(api, cli, cli_args, body, field):
    said = cli("subscribers", "add", "cy@example.org", "-t", "Alpha", *cli_args, ok=False)
    assert said.exit_code == 1
    (line,) = [line for line in said.output.splitlines() if line.startswith("Error: ")]
    request = {"email": "cy@example.org", "topics": ["Alpha"], **body}
    refused = api.call("POST", "/api/v1/subscribers", api.token("subscribers:write"), json=request)
    problem = assert_problem(refused, 422)
    assert problem["detail"] == line.removeprefix("Error: ")
    assert problem["errors"] == {field: [problem["detail"]]}


def test_bad_addresses_unknown_topics_and_duplicates(api, cli):
    token = api.token("subscribers:write")
    said = cli("subscribers", "add", "not-an-address", "-t", "Alpha", ok=False).output
    refused = assert_problem(
        api.call(
            "POST",
            "/api/v1/subscribers",
            token,
            json={"email": "not-an-address", "topics": ["Alpha"]},
        ),
        422,
    )
    assert f"Error: {refused['detail']}" in said
    unknown = api.call(
        "POST", "/api/v1/subscribers", token, json={"email": "cy@example.org", "topics": ["Nope"]}
    )
    assert (
        "unknown topic 'Nope'; known topics: Alpha, Beta" in assert_problem(unknown, 422)["detail"]
    )
    again = api.call("POST", "/api/v1/subscribers", token, json={"email": ADA, "topics": ["Alpha"]})
    assert_problem(again, 409, "is subscribed already")


# ---------------------------------------------------------------- subscribers


def test_a_subscriber_from_creation_to_deletion(api, ran):
    token = api.token("subscribers:write")
    made = api.call(
        "POST",
        "/api/v1/subscribers",
        token,
        json={
            "email": "Cy@Example.org",
            "topics": ["alpha"],
            "language": "zh-cn",
            "hour": "7",
            "timezone": "Asia/Shanghai",
            "follows": ["Kaiming He"],
        },
    )
    assert made.status_code == 201, made.get_json()
    cy = made.get_json()
    assert cy["email"] == "Cy@example.org" and cy["topics"] == ["Alpha"]
    assert cy["language"] == "zh-CN" and cy["hour"] == 7 and cy["follows"] == ["Kaiming He"]
    assert made.headers["Location"].endswith(f"/api/v1/subscribers/{cy['id']}")
    assert cy["id"] == public_id(ran, "cy@example.org")
    path = f"/api/v1/subscribers/{cy['id']}"
    assert api.call("GET", path, token).get_json() == cy
    changed = api.call(
        "PATCH",
        path,
        token,
        json={
            "add_topics": ["Beta"],
            "remove_topics": ["Alpha"],
            "cadence": "weekly",
            "day": "fri",
        },
    ).get_json()
    assert changed["topics"] == ["Beta"] and changed["day"] == "fri"
    assert_problem(
        api.call("PATCH", path, token, json={"remove_topics": ["Beta"]}), 422, "at least one topic"
    )
    events = api.call("GET", f"{path}/events", token).get_json()
    assert [(e["kind"], e["source"]) for e in events] == [("subscribed", "api"), ("changed", "api")]
    assert api.call("DELETE", path, token).status_code == 204
    assert state(ran, "cy@example.org").status == "unsubscribed"
    back = api.call("PATCH", path, token, json={"resubscribe": True}).get_json()
    assert back["status"] == "active"
    assert api.call("DELETE", f"{path}?purge=true", token).status_code == 204
    assert state(ran, "cy@example.org") is None
    assert_problem(api.call("GET", path, token), 404, "no subscriber with this id")
    # Never by address or row number.
    assert_problem(api.call("GET", f"/api/v1/subscribers/{ADA}", token), 404)
    assert_problem(api.call("GET", "/api/v1/subscribers/1", token), 404)


def test_subscribers_come_a_page_at_a_time_with_filters(api, ran, cli):
    emails = add_subscribers(ran, "Beta", 7)
    cli("subscribers", "edit", emails[3], "--lang", "de")
    cli("subscribers", "remove", emails[5])
    token = api.token("subscribers:read")
    seen, path, pages = [], "/api/v1/subscribers?limit=3&topic=beta", 0
    while path:
        answer = api.call("GET", path, token)
        page = answer.get_json()
        assert len(page["items"]) <= 3
        seen += [item["email"] for item in page["items"]]
        path = page["next"]
        if path:
            assert answer.headers["Link"] == f'<{path}>; rel="next"'
            assert parse_qs(urlsplit(path).query)["topic"] == ["beta"]
        pages += 1
    assert seen == [ADA, BO, *emails] and pages == 3

    def emails_of(query: str) -> list[str]:
        return [
            i["email"]
            for i in api.call("GET", f"/api/v1/subscribers?{query}", token).get_json()["items"]
        ]

    assert emails_of("topic=Alpha") == [ADA]
    assert emails_of("status=unsubscribed") == [emails[5]]
    assert emails_of("language=de") == [emails[3]]
    assert emails_of("email=READER0000") == emails[:7]
    assert emails_of("email=bo@") == [BO]
    assert emails_of("email=%25") == []  # a LIKE wildcard is a character like any other
    assert_problem(api.call("GET", "/api/v1/subscribers?status=gone", token), 422)
    assert_problem(api.call("GET", "/api/v1/subscribers?topic=Nope", token), 422, "unknown topic")
    assert_problem(api.call("GET", "/api/v1/subscribers?cursor=forged", token), 422, "cursor")
    assert_problem(api.call("GET", "/api/v1/subscribers?limit=0", token), 422)


def test_the_csv_import_reports_each_row_as_the_cli_does(api, ran, cli, tmp_path):
    text = (
        "email,name,topics,language\n"
        "cy@example.org,Cy,Alpha,en\n"
        "not-an-address,X,Alpha,en\n"
        "di@example.org,Di,Nope,en\n"
        f"{ADA},Ada,Beta,en\n"
    )
    path = tmp_path / "people.csv"
    path.write_text(text)
    token = api.token("subscribers:write")
    answer = api.call(
        "POST",
        "/api/v1/subscribers/import?update=true",
        token,
        data=text.replace("cy@", "ed@").replace(ADA, BO),
        content_type="text/csv",
    )
    assert answer.status_code == 200
    report = answer.get_json()
    said = cli("subscribers", "import", str(path), "--update", ok=False)
    cli_lines = [line for line in said.output.splitlines() if ": rejected: " in line]
    assert [
        f"{path}:{row['line']}: rejected: {row['reason']}" for row in report["rejected"]
    ] == cli_lines
    assert [row["line"] for row in report["rejected"]] == [3, 4]
    assert report["outcomes"] == {"added": 1, "updated": 1}
    assert report["summary"] == "1 added, 1 updated; 2 rejected."
    assert said.output.splitlines()[-1] == report["summary"]
    assert state(ran, "ed@example.org").topics == ("Alpha",)
    assert_problem(
        api.call("POST", "/api/v1/subscribers/import", token, json={"a": 1}), 415, "text/csv"
    )
    big = "email,topics\n" + "x@example.org,Alpha\n" * 60_000
    assert_problem(
        api.call("POST", "/api/v1/subscribers/import", token, data=big, content_type="text/csv"),
        413,
    )
    # The other operations keep the site's 64 KB.
    assert_problem(
        api.call(
            "POST", "/api/v1/topics", token, data="x" * 70_000, content_type="application/json"
        ),
        413,
    )


# ---------------------------------------------------------------- topics


def test_topics_are_added_edited_tested_and_removed(api, ran, arxiv):
    token = api.token("topics:write")
    made = api.call(
        "POST",
        "/api/v1/topics",
        token,
        json={"name": "Gamma", "keywords": ["gamma ray"], "categories": ["astro-ph.HE"]},
    )
    assert made.status_code == 201 and made.headers["Location"].endswith("/api/v1/topics/Gamma")
    assert (
        made.get_json()["arxiv_query"]
        == '(ti:"gamma ray" OR abs:"gamma ray") AND (cat:astro-ph.HE)'
    )
    assert_problem(
        api.call("POST", "/api/v1/topics", token, json={"name": "gamma", "keywords": ["g"]}),
        409,
        "exists already",
    )
    edited = api.call(
        "PATCH",
        "/api/v1/topics/gamma",
        token,
        json={"add_keywords": ["GRB"], "remove_categories": ["ASTRO-PH.HE"]},
    )
    assert (
        edited.get_json()["keywords"] == ["gamma ray", "GRB"]
        and edited.get_json()["categories"] == []
    )
    assert_problem(
        api.call(
            "POST", "/api/v1/topics", token, json={"name": "Bad", "categories": ["not a category"]}
        ),
        422,
    )
    assert_problem(api.call("GET", "/api/v1/topics/Nope", token), 404, "unknown topic 'Nope'")
    tested = api.call("POST", "/api/v1/topics/Alpha/test?limit=5", token).get_json()
    assert tested["query"] == arxiv.requests[-1].search_query
    assert [p["arxiv_id"] for p in tested["papers"]] == [e.arxiv_id for e in PAPERS["Alpha"]]
    assert tested["total"] >= len(PAPERS["Alpha"])
    assert_problem(
        api.call("DELETE", "/api/v1/topics/Alpha", token), 409, "active subscriber(s) follow Alpha"
    )
    assert api.call("DELETE", "/api/v1/topics/Alpha?force=true", token).status_code == 204
    assert state(ran, ADA).topics == ("Beta",)


def test_a_topic_test_when_arxiv_fails_is_503(api, ran, monkeypatch):
    set_env(monkeypatch, arxiv_api_url="http://127.0.0.1:9/api/query")
    app = create_app()
    client = ApiClient(app.test_client(), api.cli)
    failed = client.call("POST", "/api/v1/topics/Alpha/test", api.token("topics:write"))
    assert_problem(failed, 503)
    assert failed.headers["Retry-After"]


# ---------------------------------------------------------------- digests, papers, the job


def test_digests_their_papers_and_deliveries(api, ran):
    token = api.token("digests:read", "papers:read")
    (digest,) = api.call("GET", "/api/v1/digests", token).get_json()
    assert digest["papers"] == 3 and digest["topics"] == {"Alpha": 2, "Beta": 2}
    assert digest["deliveries"] == {"sent": 2}
    assert api.call("GET", f"/api/v1/digests/{digest['id']}", token).get_json() == digest
    papers = api.call("GET", f"/api/v1/digests/{digest['id']}/papers", token).get_json()
    assert [(t["name"], [p["arxiv_id"] for p in t["papers"]]) for t in papers["topics"]] == [
        ("Alpha", sorted((e.arxiv_id for e in PAPERS["Alpha"]), reverse=True)),
        ("Beta", sorted((e.arxiv_id for e in PAPERS["Beta"]), reverse=True)),
    ]
    assert_problem(api.call("GET", "/api/v1/digests/999999", token), 404, "no digest")
    shared = api.call("GET", "/api/v1/papers?arxiv_id=2611.00009", token).get_json()
    assert [(p["arxiv_id"], p["topics"]) for p in shared] == [("2611.00009", ["Alpha", "Beta"])]
    beta = api.call("GET", "/api/v1/papers?topic=Beta", token).get_json()
    assert sorted(p["arxiv_id"] for p in beta) == ["2611.00002", "2611.00009"]
    day = shared[0]["published"][:10]
    assert len(api.call("GET", f"/api/v1/papers?since={day}&until={day}", token).get_json()) >= 1
    assert api.call("GET", "/api/v1/papers?until=2000-01-01", token).get_json() == []
    assert_problem(api.call("GET", "/api/v1/papers?since=yesterday", token), 422)


def test_running_the_job_queues_it_like_the_worker_does(api, ran, arxiv, cli):
    tasks = load_tasks()
    token = api.token("job:run")
    status = api.call("GET", "/api/v1/job", token).get_json()
    assert status["queue"] == {
        "ok": True,
        "problem": None,
        "pending": 0,
        "scheduled": 0,
        "warning": None,
    }
    assert status["latest_digest"]["deliveries"] == {"sent": 2}
    queued = api.call("POST", "/api/v1/job/run", token)
    assert queued.status_code == 202 and queued.get_json()["queued"]
    (task,) = tasks.huey.pending()
    assert task.name == "daily_job" and task.id == queued.get_json()["task_id"]
    waiting = api.call("GET", "/api/v1/job", token).get_json()["queue"]
    assert waiting["pending"] == 1 and "no worker is alive" in waiting["warning"]
    assert "1 task(s) waiting" in cli("status").output
    tasks.huey.flush()
    asked = len(arxiv.requests)
    tasks.huey.immediate = True  # as a worker would: the job runs, and fetches from the local arXiv
    try:
        assert api.call("POST", "/api/v1/job/run", token).status_code == 202
    finally:
        tasks.huey.immediate = False
    assert len(arxiv.requests) > asked  # the job fetched again


def test_running_the_job_with_nothing_to_do_is_409(settings, cli):
    api = ApiClient(create_app(settings).test_client(), cli)
    assert_problem(api.call("POST", "/api/v1/job/run", api.token("job:run")), 409, "nothing to do")


# ---------------------------------------------------------------- the rate limit


@ONE_DATABASE
def test_each_token_has_its_own_rate_limit(settings, cli, monkeypatch):
    set_env(monkeypatch, api_rate_limit="3/minute")
    api = ApiClient(create_app().test_client(), cli)
    busy, other = api.token("topics:read", name="busy"), api.token("topics:read", name="other")
    for _ in range(3):
        assert api.call("GET", "/api/v1/topics", busy).status_code == 200
    limited = api.call("GET", "/api/v1/topics", busy)
    body = assert_problem(limited, 429, "3 per 1 minute")
    assert body["type"].endswith("/rate-limited")
    assert 0 < int(limited.headers["Retry-After"]) <= 61
    assert api.call("GET", "/api/v1/topics", other).status_code == 200
    assert api.client.get("/api/v1/openapi.json").status_code == 200  # the document is not counted
    assert api.client.get("/digests/").status_code == 200  # nor the site


@ONE_DATABASE
def test_a_bad_rate_limit_setting_is_refused(settings, cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_API_RATE_LIMIT", "lots")
    said = cli("config", ok=False).output
    assert "NEWSLETTER_API_RATE_LIMIT=lots: must be a rate such as 120/minute" in said


def test_json_answers_are_json(api):
    answer = api.call("GET", "/api/v1/topics", api.token("topics:read"))
    assert [t["name"] for t in answer.get_json()] == ["Alpha", "Beta"]
    assert answer.mimetype != PROBLEM


@ONE_DATABASE
def test_the_rate_limit_is_shared_through_redis(settings, cli, monkeypatch, redis_url):
    # Two apps stand for two gunicorn workers (or machines): one count in Redis.
    set_env(monkeypatch, api_rate_limit="2/minute", redis_url=redis_url)
    first, second = create_app().test_client(), create_app().test_client()
    token = ApiClient(first, cli).token("topics:read", name="shared")
    assert ApiClient(first, cli).call("GET", "/api/v1/topics", token).status_code == 200
    assert ApiClient(second, cli).call("GET", "/api/v1/topics", token).status_code == 200
    assert_problem(ApiClient(first, cli).call("GET", "/api/v1/topics", token), 429)


def test_a_locked_database_is_503_with_retry_after(api, ran):
    token = api.token("subscribers:write")
    body = {"email": "cy@example.org", "topics": ["Alpha"]}
    with write_locked(ran, at_most=20):
        busy = api.call("POST", "/api/v1/subscribers", token, json=body)
    assert_problem(busy, 503, "busy")
    assert busy.headers["Retry-After"] == "10"
    assert state(ran, "cy@example.org") is None


# ---------------------------------------------------------------- chat channels


def test_a_channel_from_creation_to_deletion(api, ran):
    """A channel is added, shown, tested and removed through the API with the CLI's checks; its
    URL's secret part and its token are taken in and never given back; people and channels
    are apart (no channel among the subscribers, no person among the channels)."""
    token = api.token("subscribers:write")
    with ChatServer("matrix") as server:
        body = {
            "platform": "matrix",
            "url": server.url,
            "room": MATRIX_ROOM,
            "token": MATRIX_TOKEN,
            "name": "#lab",
            "topics": ["Alpha"],
            "language": "zh",
        }
        made = api.call("POST", "/api/v1/channels", token, json=body)
        assert made.status_code == 201, made.get_data(as_text=True)
        channel = made.get_json()
        assert made.headers["Location"].endswith(f"/api/v1/channels/{channel['id']}")
        assert channel["platform"] == "matrix" and channel["room"] == MATRIX_ROOM
        assert channel["topics"] == ["Alpha"] and channel["language"] == "zh"
        assert channel["status"] == "active"
        assert MATRIX_TOKEN not in made.get_data(as_text=True)

        again = api.call("POST", "/api/v1/channels", token, json=body)
        assert_problem(again, 409, "subscribed already")
        unnamed = api.call("POST", "/api/v1/channels", token, json={**body, "room": "#alias:x"})
        assert_problem(unnamed, 422, "room")
        outside = {"platform": "slack", "url": "http://hooks.example.org/x", "name": "#o"}
        outside["topics"] = ["Alpha"]
        assert_problem(api.call("POST", "/api/v1/channels", token, json=outside), 422, "https")
        unknown = {**body, "url": server.url + "/other", "name": "#u", "topics": ["Nope"]}
        assert_problem(api.call("POST", "/api/v1/channels", token, json=unknown), 422, "Nope")

        listed = api.call("GET", "/api/v1/channels", token)
        assert [row["id"] for row in listed.get_json()] == [channel["id"]]
        assert MATRIX_TOKEN not in listed.get_data(as_text=True)
        people = api.call("GET", "/api/v1/subscribers", token).get_json()["items"]
        assert channel["id"] not in {row["id"] for row in people}
        assert_problem(api.call("GET", f"/api/v1/subscribers/{channel['id']}", token), 404)
        ada = public_id(ran, ADA)
        assert_problem(api.call("GET", f"/api/v1/channels/{ada}", token), 404)

        tested = api.call("POST", f"/api/v1/channels/{channel['id']}/test", token)
        assert tested.get_json() == {
            "channel": "matrix channel '#lab'",
            "posted": True,
            "answer": "",
        }
        (posted,) = server.accepted
        assert "Test from the arXiv digest" in posted["body"] and "Alpha" in posted["body"]

        server.then(Reply(403, {"errcode": "M_FORBIDDEN", "error": "not in room"}))
        refused = api.call("POST", f"/api/v1/channels/{channel['id']}/test", token).get_json()
        assert refused["posted"] is False and "M_FORBIDDEN" in refused["answer"]
        assert MATRIX_TOKEN not in refused["answer"] and server.url not in refused["answer"]

    gone = api.call("DELETE", f"/api/v1/channels/{channel['id']}", token)
    assert gone.status_code == 204
    shown = api.call("GET", f"/api/v1/channels/{channel['id']}", token).get_json()
    assert shown["status"] == "unsubscribed"
    purged = api.call("DELETE", f"/api/v1/channels/{channel['id']}?purge=true", token)
    assert purged.status_code == 204
    assert_problem(api.call("GET", f"/api/v1/channels/{channel['id']}", token), 404)
