"""Deliverability: a real spam filter's score, the headers mail providers ask for, strict MIME.

The message is the one the real pipeline writes for a subscriber, from real arXiv responses
(`tests/real_digest.py`). SpamAssassin runs with its local rules only (`-L`: no DNS, no
network tests), as Debian ships them; it must score the digest below `SPAM_THRESHOLD`, and no
rule may weigh more than `RULE_LIMIT` unless the papers' own words trigger it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from newsletter.render.fit import HTML_SIZE_LIMIT
from tests.helpers import skip_or_fail_in_ci
from tests.real_digest import SUBSCRIBER, real_digest_message

SPAM_THRESHOLD = 2.5
"""Points. SpamAssassin calls 5.0 spam; a digest must stay far below, so that the network tests
a real server adds (DNS blocklists, SPF, DKIM) still leave it clear. Real abstracts alone
score 2.2 (LONGWORDS, below); what the markup and headers add must fit in the rest."""
RULE_LIMIT = 0.5
CONTENT_RULES = {"LONGWORDS"}
"""Rules the papers' own words trigger, not our markup: LONGWORDS is six long lower-case
words in a row (`reflective reinforcement approach effectively leverages inherent`), as
academic prose has."""

STATUS = re.compile(r"^X-Spam-Status: (?P<verdict>Yes|No), score=(?P<score>-?[\d.]+)", re.M)
RULE_LINE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s+(.*)$", re.M)

pytestmark = pytest.mark.parametrize("database_url", [None])


@pytest.fixture
def raw(cli, monkeypatch) -> bytes:
    return real_digest_message(cli, monkeypatch)


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        skip_or_fail_in_ci("spamassassin is not installed (Debian: apt-get install spamassassin)")
    return found


def test_spamassassin_scores_the_digest_low(raw, tmp_path):
    command = [spamassassin(), "-L", "-t", "-p", str(tmp_path / "user_prefs")]
    result = subprocess.run(
        command,
        input=raw,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},  # its per-user files go here, not to ~
    )
    report = result.stdout.decode("utf-8", errors="replace")
    status = STATUS.search(report)
    assert status, f"no X-Spam-Status in spamassassin's output:\n{report[:2000]}{result.stderr!r}"
    score = float(status["score"])
    details = "\n\n".join(report[report.find("Content analysis details") :].split("\n\n", 2)[:2])
    hits = {name: float(points) for points, name, _ in RULE_LINE.findall(details)}
    assert hits, f"no rules table in spamassassin's report:\n{report[:2000]}"
    print(f"\nSpamAssassin score {score} (threshold {SPAM_THRESHOLD}); rules hit: {hits}")
    print(details)
    assert status["verdict"] == "No"
    assert score < SPAM_THRESHOLD, f"score {score} ≥ {SPAM_THRESHOLD}: {hits}"
    heavy = {name: points for name, points in hits.items() if points > RULE_LIMIT}
    assert set(heavy) <= CONTENT_RULES, f"rules our message triggers: {heavy}"


def test_the_message_parses_strictly_and_every_part_decodes(raw):
    message = BytesParser(policy=policy.strict).parsebytes(raw)  # raises on any defect
    assert isinstance(message, EmailMessage) and not message.defects
    assert max(len(line) for line in raw.splitlines()) <= 998  # RFC 5322's line limit
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert not part.defects and part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64", "7bit")
        part.get_content()  # decodes, strictly
    html = message.get_body(("html",)).get_content()
    assert len(html.encode()) < HTML_SIZE_LIMIT
    assert html.startswith("<!doctype html>") and "</html>" in html


def test_the_headers_of_the_first_issue(raw):
    message = BytesParser(policy=policy.strict).parsebytes(raw)
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == "arXiv Digest <digest@localhost>"
    assert message["To"] == SUBSCRIBER
    # (Python folds a subject of 70-78 characters onto its own line: " arXiv digest …".)
    assert re.fullmatch(
        r"arXiv digest \d{4}-\d\d-\d\d: 52 new papers in Language Models, Learning, Glaciers",
        message["Subject"].strip(),
    )
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"<[0-9a-f]{32}@localhost>", message["Message-ID"])
    assert message["List-Id"] == "arXiv Digest <digest.localhost>"
    https_link, mailto = (value.strip(" <>") for value in message["List-Unsubscribe"].split(","))
    assert https_link.startswith("https://digest.example.org/unsubscribe/")
    assert mailto.startswith("mailto:digest@localhost")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert f'href="{https_link}"' in html and f"Unsubscribe: {https_link}" in text


def test_text_part_has_the_same_papers_and_links_as_the_html(raw):
    message = BytesParser(policy=policy.strict).parsebytes(raw)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    links = re.compile(r"https://(?:arxiv\.org/(?:abs|pdf)|github\.com)/[^\s\"<>]+")
    html_links = {link.rstrip(".") for link in links.findall(html)}
    text_links = {link.rstrip(".") for link in links.findall(text)}
    assert html_links and html_links == text_links
    assert "<img" not in html  # no text in images: nothing to block, nothing unreadable
