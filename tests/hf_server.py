"""A local HTTP server that answers like the Hugging Face papers API, for tests (loopback only).

    with HuggingFaceServer() as hf:
        hf.paper("2611.00001", githubRepo="https://github.com/owner/repo")
        hf.reply("2611.00002", Reply.text("boom", status=500))
        HuggingFacePapers(hf.base_url).code_url("2611.00001")

`GET /api/papers/<id>` answers the JSON set for that id; an id with nothing set gets the
default reply if one is set, else Hugging Face's 404 (`{"error": "Entry not found"}`), which
means "not on Hugging Face". Queued replies (`queue`) answer the next requests first, as in
`ArxivServer`, whose machinery this reuses.
"""

from __future__ import annotations

import json
import re

from tests.arxiv_server import API_PATH, ArxivServer, RecordedRequest, Reply

JSON_TYPE = "application/json; charset=utf-8"
NOT_FOUND = Reply(404, JSON_TYPE, b'{"error":"Entry not found"}')
_PAPER_PATH = re.compile(r"/api/papers/(?P<id>[^/?]+)")


def paper_json(arxiv_id: str, **fields: object) -> dict:
    """A paper as the API describes it (the fields a client might read, plus `fields`)."""
    return {
        "id": arxiv_id,
        "title": f"Paper {arxiv_id}",
        "summary": "We study things.",
        "authors": [{"name": "Ada First"}, {"name": "Bo Second"}],
        "publishedAt": "2026-11-26T17:00:00.000Z",
        "upvotes": 3,
        **fields,
    }


class HuggingFaceServer(ArxivServer):
    """The papers API on 127.0.0.1; `.base_url` is what NEWSLETTER_HF_API_URL would hold."""

    def __init__(self) -> None:
        super().__init__()
        self.papers: dict[str, Reply] = {}

    @property
    def base_url(self) -> str:
        return self.url.removesuffix(API_PATH)

    def paper(self, arxiv_id: str, **fields: object) -> None:
        """Answer for this paper with its JSON (`githubRepo=...` and any other field)."""
        body = json.dumps(paper_json(arxiv_id, **fields)).encode()
        self.reply(arxiv_id, Reply(200, JSON_TYPE, body))

    def reply(self, arxiv_id: str, reply: Reply) -> None:
        with self._lock:
            self.papers[arxiv_id] = reply

    def asked(self) -> list[str]:
        """The arXiv ids asked about so far, in order."""
        return [
            match["id"]
            for request in self.requests
            if (match := _PAPER_PATH.fullmatch(request.path))
        ]

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.pop(0)
            match = _PAPER_PATH.fullmatch(request.path)
            if match and match["id"] in self.papers:
                return self.papers[match["id"]]
            return self.default or NOT_FOUND
