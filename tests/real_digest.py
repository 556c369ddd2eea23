"""A digest made the way users get theirs: real arXiv responses through fetch, digest and send.

    raw = real_digest_message(cli, monkeypatch)   # the .eml bytes of one subscriber's digest
    with real_arxiv(cli, monkeypatch) as settings:  # the same topics and arXiv; readers yours
        ...

Four topics, each answered by the local arXiv server with a real response from
`../shared/fixtures/arxiv/current/` (skipped where those are absent): two days of cs.AI/LG/CL
papers, `R&amp;D` in a title with a non-Latin author name, and a topic whose papers are all
listed under an earlier topic (its table-of-contents line must still count them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.sources.arxiv_query import build_query
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.helpers import set_env

TOPICS = {
    # name: (raw arXiv query, real response)
    "Language Models": ("cat:cs.CL", "current/cs-ai-lg-cl_2026-05-12_25.xml"),
    "Learning": ("cat:cs.LG", "current/cs-ai-lg-cl_2026-07-30_25.xml"),
    "Glaciers": ("all:glacier", "current/entity-in-title_2.xml"),
    "Agents": ("cat:cs.AI", "current/cs-ai-lg-cl_2026-05-12_25.xml"),
}
SUBSCRIBER = "ada@example.org"


@contextmanager
def real_arxiv(cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The four topics added, and a local arXiv answering each with its real response, for as
    long as the block runs; the settings that point at it."""
    files = {name: shared_fixture(path) for name, (_query, path) in TOPICS.items()}
    with ArxivServer() as server:
        for name, (query, _path) in TOPICS.items():
            server.route(Reply.file(files[name]), search_query=build_query(raw_query=query))
        settings = set_env(
            monkeypatch, arxiv_api_url=server.url, base_url="https://digest.example.org"
        )
        for name, (query, _path) in TOPICS.items():
            cli("topics", "add", name, "--query", query, "-d", f"New papers: {query}.")
        yield settings


def real_digest_message(cli, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Run the daily job against the real responses; the subscriber's message as sent."""
    with real_arxiv(cli, monkeypatch) as settings:
        topic_args = [arg for name in TOPICS for arg in ("--topic", name)]
        cli("subscribers", "add", SUBSCRIBER, "--name", "Ada", *topic_args)
        cli("run")
    (path,) = sorted(Path(settings.outbox_dir).glob("*.eml"))
    return path.read_bytes()
