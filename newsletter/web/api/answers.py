"""What the API's views answer besides their bodies."""

from __future__ import annotations

from flask import url_for


def created(body: dict, endpoint: str, **values: str) -> tuple[dict, int, dict[str, str]]:
    """201 Created, with the new resource's address in Location."""
    return body, 201, {"Location": url_for(endpoint, **values)}
