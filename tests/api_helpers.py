"""What the API tests share: a client that carries a token, tokens made as the operator makes
them (`newsletter tokens create`), and the shape every error must have (RFC 9457)."""

from __future__ import annotations

from dataclasses import dataclass

PROBLEM = "application/problem+json"


@dataclass
class ApiClient:
    """Flask's test client, with a way to make tokens through the CLI."""

    client: object
    cli: object

    def token(self, *scopes: str, name: str | None = None) -> str:
        name = name or f"t-{'-'.join(scopes).replace(':', '_').replace('*', 'all')}"
        args = ["tokens", "create", "--name", name]
        for scope in scopes:
            args += ["--scope", scope]
        return self.cli(*args).stdout.strip()

    def call(self, method: str, path: str, token: str | None = None, **options):
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(path, method=method, headers=headers, **options)


def assert_problem(response, status: int, detail: str | None = None) -> dict:
    """The answer is a problem details document of `status` (with `detail` in its detail)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM, response.headers
    body = response.get_json(force=True)
    assert {"type", "title", "status", "detail", "instance"} <= set(body), body
    assert body["status"] == status
    assert body["instance"] == response.request.path
    if detail is not None:
        assert detail in body["detail"], body
    assert response.headers["Cache-Control"] == "no-store"
    return body
