"""One bad record never stops the rest, end to end.

A real arXiv server hands out a poisoned paper (LaTeX the converter chokes on, links to other
schemes, markup), a real SMTP relay without SMTPUTF8 cannot take one reader's address, and a
real mbox holds a message nested 1,000 levels deep between two unsubscribe requests. Every
other reader gets their digest exactly once, `status` names the bad delivery and its reason,
the inbox read lists the bad message and applies the requests around it, and a rerun of both
changes nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import get_settings
from newsletter.web import create_app
from tests.arxiv_server import ArxivServer, Reply
from tests.atom import Entry, feed
from tests.helpers import mailto_of, nested, request_for, set_env, status_of, write_mbox
from tests.smtp_server import LocalSMTPServer

POISONED = Entry(
    "2611.00666",
    r"PanGu: \href{https://github.com/a/b}{code}, \verb|x|, $\\$ and <b>bold</b>",
    abstract=(
        r"See \href{javascript:alert(1)}{this}, \url{http://[::1}, {unbalanced"
        r" \begin{weird} $\verb|y|$ <script>alert(1)</script> [l](javascript:x)."
    ),
)
POISONED_TITLE = r"PanGu: code (https://github.com/a/b), \verb|x|, $\\$ and <b>bold</b>"
GOOD = Entry("2611.00001", "A good paper about SLAM")
READERS = ("ada@example.org", "bo@example.org", "cy@example.org")
UNSENDABLE = "用户@例子.广告"  # needs SMTPUTF8, which this relay does not offer


@pytest.fixture
def world(cli, settings, example_topics, monkeypatch, tmp_path):
    arxiv_answer = Reply(body=feed([POISONED, GOOD]))
    with ArxivServer(default=arxiv_answer) as arxiv, LocalSMTPServer() as smtp:
        set_env(monkeypatch, arxiv_api_url=arxiv.url, smtp_url=smtp.url)
        for address in (*READERS, UNSENDABLE):
            cli("subscribers", "add", address, "--topic", "SLAM")
        yield smtp


def received(smtp) -> Counter:
    return Counter(message.rcpt_tos[0] for message in smtp.messages)


def test_a_poisoned_paper_an_unsendable_reader_and_a_hostile_message_stop_nothing(
    cli, settings, world, tmp_path
):
    smtp = world
    run = cli("run", ok=False)

    assert run.exit_code == 1  # one delivery failed, and says so
    assert "3 sent, 1 failed" in run.output and "left out" not in run.output
    assert received(smtp) == Counter(READERS)
    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "code (https://github.com/a/b)" in html and r"\verb|x|" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<script" not in html
    assert not re.search(r'href="(?:javascript|data):', html)

    status = cli("status").output
    assert UNSENDABLE in status and "SMTPUTF8" in status

    # Bo and Cy ask to leave through the mailto:, with a hostile message between them.
    by_reader = {message.rcpt_tos[0]: message for message in smtp.messages}
    requests = [request_for(mailto_of(by_reader[address]), address) for address in READERS[1:]]
    box = write_mbox(tmp_path / "inbox.mbox", requests[0], nested(1000), requests[1])
    read = cli("unsubscribes", "import", str(box))
    assert "2 unsubscribed" in read.output
    assert "unreadable  inbox.mbox message 2" in read.output and "nested deeper" in read.output
    assert [status_of(cli, address) for address in READERS] == [
        "active",
        "unsubscribed",
        "unsubscribed",
    ]

    # A rerun of both stops at nothing and changes nothing.
    again = cli("run", ok=False)
    assert "0 sent" in again.output and received(smtp) == Counter(READERS)
    # (but the schedule's counts of readers: two have left since)
    assert without_schedule(cli("status").output) == without_schedule(status)
    reread = cli("unsubscribes", "import", str(box))
    assert "0 unsubscribed" in reread.output and "2 read before" in reread.output


def without_schedule(status: str) -> str:
    """`newsletter status` without its table of next sends (the readers each has)."""
    lines = status.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Schedule")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
    return "\n".join(lines[:start] + lines[end + 1 :])


def test_every_page_and_export_that_shows_the_poisoned_paper_answers(cli, settings, world):
    cli("fetch")
    preview = cli("preview", "--subscriber", READERS[0], "-o", "preview.html")  # before a send
    assert "preview.html" in preview.output
    page = Path("preview.html").read_text(encoding="utf-8")
    assert "code (https://github.com/a/b)" in page
    cli("run", ok=False)
    day = settings.today().isoformat()
    by_reader = {message.rcpt_tos[0]: message for message in world.messages}
    personal = re.search(
        r"/digests/[^/]+/for/[^\s\"]+", by_reader[READERS[0]].get_body(("plain",)).get_content()
    ).group()

    client = create_app(get_settings()).test_client()
    paths = [
        "/digests/",
        f"/digests/{day}",
        f"/digests/{day}/slam",
        personal,
        "/feed.xml",
        "/topics/slam/feed.xml",
        f"/admin/preview?email={READERS[0]}",
    ]
    for path in paths:
        answer = client.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert answer.status_code == 200, path
        assert "PanGu: code" in answer.get_data(as_text=True) or path == "/digests/", path
    markdown = cli("export", "markdown", "--topic", "SLAM").output
    assert "PanGu: code (https://github.com/a/b)" in markdown
    assert not re.search(r"(?<!\\)\]\((?!https?://|#)", markdown)  # every link http(s)
    papers = json.loads(cli("export", "json", "--topic", "SLAM").output)["topics"][0]["papers"]
    assert {paper["title"] for paper in papers} >= {POISONED_TITLE}
