"""The digest as readers get it, byte for byte: a fixed day rendered and compared with the
copy kept in `tests/golden/`.

Four topics answered with real arXiv responses, three readers (HTML in English, plain text,
HTML in a language with no translator configured, so the "why untranslated" note shows), sent
for a fixed date; plus the seed's Markdown page and the JSON export. Only what differs from
run to run is replaced before comparing: the Date and Message-ID headers, the MIME boundaries
and the signed tokens (they carry a timestamp and a random public id). Anything else that
changes, a header, a paper, a byte of the HTML, fails the test.

After a change meant to alter what readers get, rewrite the copy with
NEWSLETTER_TEST_UPDATE_GOLDEN=1 and review its diff like any other change.
"""

from __future__ import annotations

import email
import json
import os
import re
from email import policy
from pathlib import Path

import pytest

from tests.real_digest import real_arxiv

GOLDEN = Path(__file__).parent / "golden"
DAY = "2026-11-27"
READERS = {
    "ada@example.org": (
        "--name",
        "Ada",
        "--topic",
        "Language Models",
        "--topic",
        "Learning",
        "--topic",
        "Glaciers",
        "--topic",
        "Agents",
    ),
    "bob@example.org": ("--format", "text", "--topic", "Glaciers", "--topic", "Agents"),
    "chen@example.org": ("--lang", "de", "--topic", "Learning", "--topic", "Glaciers"),
}
TOKEN = re.compile(r"(?<=/)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}")
"""A signed token as it appears in a link: three dot-separated base64 parts."""
SUBJECT_TOKEN = re.compile(r"(?<=unsubscribe )[A-Za-z0-9_.-]{20,}")
VARYING_HEADERS = ("Date", "Message-ID")


def normalised(raw: bytes) -> str:
    """A sent message as text, with only what varies from run to run replaced."""
    message = email.message_from_bytes(raw, policy=policy.default)
    boundaries = [part.get_boundary() for part in message.walk() if part.is_multipart()]
    text = raw.decode("utf-8")
    text = unfolded_tokens(text, message)
    for number, boundary in enumerate(boundaries):
        text = text.replace(boundary, f"BOUNDARY-{number}")
    for name in VARYING_HEADERS:
        text = re.sub(rf"(?m)^{name}: .*$", f"{name}: (varies)", text)
    return text


def unfolded_tokens(text: str, message: email.message.EmailMessage) -> str:
    """Replace every token, including those a quoted-printable soft break cuts in two."""
    tokens: set[str] = set()
    for part in message.walk():
        if not part.is_multipart():
            body = part.get_content()
            tokens.update(TOKEN.findall(body))
    for value in message.values():
        tokens.update(TOKEN.findall(str(value)))
        tokens.update(SUBJECT_TOKEN.findall(str(value)))
    for token in sorted(tokens):
        pattern = "(?:=\r?\n)?".join(re.escape(char) for char in token)
        text = re.sub(pattern, f"TOKEN-{len(token)}", text)
    return text


@pytest.fixture
def golden_day(cli, monkeypatch, settings) -> dict[str, str]:
    """Every output of the fixed day, by file name under tests/golden/."""
    with real_arxiv(cli, monkeypatch) as settings:
        for address, options in READERS.items():
            cli("subscribers", "add", address, *options)
        cli("fetch")
    cli("send", "--date", DAY)
    outputs = {}
    for path in Path(settings.outbox_dir).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        outputs[f"{message['To'].addresses[0].username}.eml"] = normalised(path.read_bytes())
    cli("export", "markdown", "--date", DAY, "--output", "papers.md")
    outputs["papers.md"] = Path("papers.md").read_text(encoding="utf-8")
    cli("export", "json", "--date", DAY, "--output", "papers.json")
    exported = json.loads(Path("papers.json").read_text(encoding="utf-8"))
    outputs["papers.json"] = json.dumps(exported, indent=1, ensure_ascii=False, sort_keys=True)
    return outputs


def test_a_fixed_day_renders_the_same_bytes_as_the_kept_copy(golden_day):
    assert sorted(golden_day) == ["ada.eml", "bob.eml", "chen.eml", "papers.json", "papers.md"]
    if os.environ.get("NEWSLETTER_TEST_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name, text in golden_day.items():
            with open(GOLDEN / name, "w", encoding="utf-8", newline="") as kept_file:
                kept_file.write(text)
    for name, text in golden_day.items():
        with open(GOLDEN / name, encoding="utf-8", newline="") as kept_file:
            kept = kept_file.read()
        assert text == kept, f"{name} differs from tests/golden/{name}"
