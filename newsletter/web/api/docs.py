"""The API's browsable description at /api/v1/docs: a page of our own, rendered on the server
from the OpenAPI document. No script and no CDN, so it works offline and under the site's
Content-Security-Policy (which Swagger UI's inline start-up script would break)."""

from __future__ import annotations

from flask import current_app

from newsletter.render.pages import render_page
from newsletter.web.common import API_PREFIX, settings

METHODS = ("get", "post", "put", "patch", "delete")


def docs_page():
    spec = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    tags = {tag["name"]: {**tag, "operations": []} for tag in spec.get("tags", [])}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            for tag in operation.get("tags", ["other"]):
                tags.setdefault(tag, {"name": tag, "operations": []})
                tags[tag]["operations"].append(_operation(spec, path, method, item, operation))
    return render_page(
        "api_docs.html.j2",
        site_name=settings().sender_name,
        spec=spec,
        tags=list(tags.values()),
        json_url=f"{API_PREFIX}/openapi.json",
    )


def _operation(spec: dict, path: str, method: str, item: dict, operation: dict) -> dict:
    scopes = [
        scope for need in operation.get("security", []) for scope in need.get("bearerAuth", [])
    ]
    body = operation.get("requestBody", {}).get("content", {})
    return {
        "id": operation.get("operationId") or f"{method}-{path}",
        "method": method.upper(),
        "path": path,
        "summary": operation.get("summary", ""),
        "description": operation.get("description", ""),
        "scopes": scopes,
        "parameters": [*item.get("parameters", []), *operation.get("parameters", [])],
        "body": [(kind, _schema_name(value.get("schema", {}))) for kind, value in body.items()],
        "responses": [
            (status, _response_text(spec, answer))
            for status, answer in operation.get("responses", {}).items()
        ],
    }


def _schema_name(schema: dict) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1] or schema.get("type", "")


def _response_text(spec: dict, answer: dict) -> str:
    if "$ref" in answer:
        name = answer["$ref"].rsplit("/", 1)[-1]
        answer = spec.get("components", {}).get("responses", {}).get(name, {})
    return answer.get("description", "")
