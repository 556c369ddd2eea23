"""Chat channels as subscribers: added, listed, tested and removed from the command line, kept
out of everything made for an email address, and their digest rendered for each platform
within its limits, whatever the titles hold."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.digest.content import DigestContent, TopicSection
from newsletter.errors import InvalidInput
from newsletter.intake.channels import channel_spec
from newsletter.models import ChatPlatform
from newsletter.render.chat import chat_posts
from tests.chat_servers import (
    DISCORD_DESCRIPTION,
    DISCORD_EMBEDS,
    DISCORD_TITLE,
    DISCORD_TOTAL,
    FEISHU_BODY,
    FEISHU_SECRET,
    MATRIX_EVENT,
    MATRIX_ROOM,
    MATRIX_TOKEN,
    SLACK_BLOCKS,
    SLACK_HEADER,
    SLACK_SECTION,
    ChatServer,
    Reply,
)
from tests.helpers import make_paper

SLACK_URL = "https://hooks.slack.com/services/T0/B0/SLACKSECRETPATH"
HOSTILE = "@everyone <!channel> <@123> **bold** <script>x</script> <at id=all></at> [a](b) & co"
ARXIV_ID = re.compile(r"2611\.\d{5}")


def add(cli, *args: str, ok: bool = True):
    return cli("channels", "add", *args, ok=ok)


# ------------------------------------------------------------------------------ the intake


@pytest.mark.parametrize(
    "platform, url, extra, error",
    [
        ("irc", SLACK_URL, {}, "not a chat platform (use slack, discord, matrix, feishu)"),
        ("slack", "http://hooks.slack.com/services/x", {}, "must be https"),
        ("slack", "ftp://hooks.slack.com/x", {}, "must be an http(s) URL"),
        ("slack", "https://user:pw@hooks.slack.com/x", {}, "must not hold a user name"),
        ("slack", "not a url", {}, "is not a URL"),
        ("slack", SLACK_URL, {"room": "!a:b.org"}, "room id is for Matrix channels only"),
        ("discord", SLACK_URL, {"secret": "s"}, "for Matrix and Feishu channels only"),
        ("matrix", "https://m.org", {"room": "#alias:m.org", "secret": "t"}, "not a Matrix room"),
        ("matrix", "https://m.org", {"room": "!r:m.org"}, "needs the bot account's access token"),
        ("matrix", "https://m.org", {"room": "!r:m.org", "secret": "a b"}, "holds spaces"),
    ],
)
def test_bad_channels_are_refused_with_a_clear_reason(platform, url, extra, error):
    with pytest.raises(InvalidInput) as refused:
        channel_spec(platform, url, "#lab", **extra)
    assert error in str(refused.value)
    assert "SECRETPATH" not in str(refused.value)


def test_plain_http_is_allowed_to_this_machine_only():
    assert channel_spec("slack", "http://127.0.0.1:8080/hook", "#lab").url.startswith("http://")
    assert channel_spec("slack", "http://[::1]:8080/hook", "#lab").url.startswith("http://")
    assert channel_spec("lark", "https://open.larksuite.com/x", "#lab").platform == "feishu"
    with pytest.raises(InvalidInput):
        channel_spec("slack", "http://10.0.0.1/hook", "#lab")


def test_one_subscriber_per_channel_whatever_its_label():
    one = channel_spec("slack", SLACK_URL, "#lab")
    assert one.key == channel_spec("slack", SLACK_URL, "#other").key
    assert one.key != channel_spec("discord", SLACK_URL, "#lab").key
    assert one.key.startswith("channel:slack:") and "@" not in one.key


def test_cli_adds_lists_and_removes_a_channel_never_printing_its_secrets(cli, example_topics):
    added = add(cli, "--platform", "slack", "--url", SLACK_URL, "--name", "#lab-papers",
                "-t", "MLLM", "--lang", "zh")  # fmt: skip
    assert "Added the slack channel #lab-papers (zh) to MLLM" in added.output
    matrix = ["--platform", "matrix", "--homeserver", "https://matrix.example.org",
              "--room", "!AbCd:example.org", "--name", "#room"]  # fmt: skip
    added = cli("channels", "add", *matrix, "--token", "-", "-t", "SLAM", input="syt_TOKEN\n")
    assert "syt_TOKEN" not in added.output

    table = cli("channels", "list").output
    assert "#lab-papers" in table and "hooks.slack.com" in table and "!AbCd:example.org" in table
    listed = json.loads(cli("channels", "list", "--json").output)
    assert [row["name"] for row in listed] == ["#lab-papers", "#room"]
    assert listed[0]["url"] == "https://hooks.slack.com/…"
    assert listed[0]["topics"] == ["MLLM"] and listed[0]["language"] == "zh"
    everything = table + json.dumps(listed)
    assert "SLACKSECRETPATH" not in everything and "syt_TOKEN" not in everything

    # Twice the same channel, or a label taken, or a topic that does not exist: refused.
    again = add(cli, "--platform", "slack", "--url", SLACK_URL, "--name", "#x", "-t", "MLLM",
                ok=False)  # fmt: skip
    assert again.exit_code != 0 and "subscribed already" in again.output
    assert "SLACKSECRETPATH" not in again.output
    taken = add(cli, "--platform", "discord", "--url", "https://discord.com/api/webhooks/1/t",
                "--name", "#LAB-papers", "-t", "MLLM", ok=False)  # fmt: skip
    assert "a channel is named '#LAB-papers' already" in taken.output
    unknown = add(cli, "--platform", "discord", "--url", "https://discord.com/api/webhooks/1/t",
                  "--name", "#new", "-t", "Nope", ok=False)  # fmt: skip
    assert "unknown topic 'Nope'" in unknown.output
    language = add(cli, "--platform", "discord", "--url", "https://discord.com/api/webhooks/1/t",
                   "--name", "#new", "-t", "MLLM", "--lang", "xx-!!", ok=False)  # fmt: skip
    assert "not a language code" in language.output

    removed = cli("channels", "remove", "#LAB-PAPERS")
    assert "gets no more digests" in removed.output
    assert json.loads(cli("channels", "list", "--json").output)[0]["status"] == "unsubscribed"
    cli("channels", "remove", "#room", "--purge")
    assert [row["name"] for row in json.loads(cli("channels", "list", "--json").output)] == [
        "#lab-papers"
    ]
    missing = cli("channels", "test", "#nowhere", ok=False)
    assert "no channel named '#nowhere'" in missing.output


def test_channels_are_not_people(cli, settings, example_topics):
    """Not listed or exported with the addresses, and no door made for an address finds one."""
    cli("subscribers", "add", "ada@example.org", "-t", "MLLM")
    add(cli, "--platform", "slack", "--url", SLACK_URL, "--name", "ada@example.org", "-t", "MLLM")
    people = json.loads(cli("subscribers", "list", "--json").output)
    assert [row["email"] for row in people] == ["ada@example.org"]
    exported = cli("subscribers", "export").output
    assert exported.count("ada@example.org") == 1 and "SLACK" not in exported
    with session_scope(settings) as session:
        # The address's subscriber, never the channel labelled like it (bounces, unsubscribe
        # requests, the web's forms all find people this way).
        assert store.find_subscriber(session, "ada@example.org").channel is None
        assert store.find_channel(session, "ada@example.org").channel == ChatPlatform.slack
    cli("subscribers", "remove", "ada@example.org")
    assert json.loads(cli("channels", "list", "--json").output)[0]["status"] == "active"


@pytest.mark.parametrize("platform", ["slack", "discord", "matrix", "feishu"])
def test_channels_test_posts_a_short_message(cli, example_topics, platform):
    with ChatServer(platform, secret=FEISHU_SECRET if platform == "feishu" else None) as server:
        args = ["--platform", platform, "--url", server.url, "--name", "#lab", "-t", "MLLM"]
        if platform == "matrix":
            args += ["--room", MATRIX_ROOM, "--token", MATRIX_TOKEN]
        if platform == "feishu":
            args += ["--secret", FEISHU_SECRET]
        add(cli, *args)
        result = cli("channels", "test", "#lab")
        assert f"Posted a test message to {platform} channel '#lab'" in result.output
        (posted,) = server.accepted
        assert "Test from the arXiv digest" in json.dumps(posted, ensure_ascii=False)
        assert "MLLM" in json.dumps(posted)

        server.then(*[Reply(404, {"message": "Unknown Webhook", "errcode": "M_FORBIDDEN"})])
        if platform == "feishu":
            server.script = [Reply(200, {"code": 19021, "msg": "sign match fail"})]
        failed = cli("channels", "test", "#lab", ok=False)
        assert failed.exit_code == 1 and f"Not posted to {platform} channel '#lab'" in failed.output
        assert "SECRET" not in failed.output and server.url not in failed.output


# ------------------------------------------------------------------------------ rendering


def big_digest(count: int = 60, language: str = "en") -> DigestContent:
    """Two topics of long papers, hostile titles, translated abstracts, some listed by title."""
    papers = [
        make_paper(
            number,
            f"{HOSTILE} number {number}",
            abstract="A long abstract, with $L^3$ losses and R&D. " * 40,
            abstract_translated="一个很长的摘要。" * 120 if language == "zh" else None,
            code_url=f"https://github.com/example/p{number}",
            summary="One sentence.",
        )
        for number in range(1, count + 1)
    ]
    half = count // 2
    sections = (
        TopicSection("MLLM", "mllm", "", tuple(papers[: half - 5]), half + 3,
                     titles_only=tuple(papers[half - 5 : half])),
        TopicSection("SLAM <b>", "slam", "", tuple(papers[half:]), count - half),
    )  # fmt: skip
    return DigestContent(
        date(2026, 11, 27),
        sections,
        language,
        web_url="https://digest.example.org/digests/2026-11-27",
        base_url="https://digest.example.org",
        topic_names=("MLLM", "SLAM"),
    )


def body_bytes(payload: dict) -> int:
    return len(json.dumps(payload, ensure_ascii=False).encode())


def slack_texts(value) -> list[str]:
    """Every text object's text, anywhere in a Block Kit payload."""
    if isinstance(value, dict):
        own = [value["text"]] if value.get("type") in ("mrkdwn", "plain_text") else []
        return own + [text for item in value.values() for text in slack_texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in slack_texts(item)]
    return []


def within_limits(platform: str, post: dict) -> None:
    if platform == "slack":
        blocks = post["blocks"]
        assert len(blocks) <= SLACK_BLOCKS
        for block in blocks:
            limit = SLACK_HEADER if block["type"] == "header" else SLACK_SECTION
            assert all(len(text) <= limit for text in slack_texts(block))
        assert sum(len(text) for text in slack_texts(blocks)) <= 12_000
    elif platform == "discord":
        embeds = post["embeds"]
        assert len(embeds) <= DISCORD_EMBEDS and post["allowed_mentions"] == {"parse": []}
        counted = 0
        for embed in embeds:
            assert len(embed.get("title", "")) <= DISCORD_TITLE
            assert len(embed.get("description", "")) <= DISCORD_DESCRIPTION
            counted += len(embed.get("title", "")) + len(embed.get("description", ""))
            counted += len(embed.get("author", {}).get("name", ""))
        assert counted <= DISCORD_TOTAL
    elif platform == "matrix":
        assert body_bytes(post) + 1024 <= MATRIX_EVENT
        assert post["format"] == "org.matrix.custom.html" and post["m.mentions"] == {}
    else:
        assert body_bytes(post) + 100 <= FEISHU_BODY  # its timestamp and sign still fit
        assert post["msg_type"] == "interactive"


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("platform", list(ChatPlatform))
def test_a_big_digest_is_split_under_the_limits_each_paper_once(platform, language):
    content = big_digest(language=language)
    posts = chat_posts(platform, content)
    assert len(posts) > 1
    seen: list[str] = []
    for post in posts:
        within_limits(platform, post)
        seen += sorted(set(ARXIV_ID.findall(json.dumps(post))))
    expected = [p.arxiv_id for s in content.sections for p in s.papers + s.titles_only]
    assert sorted(seen) == sorted(expected)  # each paper in one post only, none lost
    text = json.dumps(posts, ensure_ascii=False)
    assert "https://digest.example.org/digests/2026-11-27#mllm" in text  # 3 more on the web
    assert "The whole digest on the web" in text
    assert re.search(r"https://digest\.example\.org/digests/2026-11-27(?!#)", text)
    if language == "zh":
        assert "一个很长的摘要" in text
    assert "https://github.com/example/p7" in text and "https://arxiv.org/pdf/2611.00007v1" in text


def test_hostile_titles_are_shown_as_text_on_every_platform():
    content = big_digest(count=12)
    slack = json.dumps(chat_posts(ChatPlatform.slack, content))
    assert "<!channel>" not in slack and "<@123>" not in slack and "<script>" not in slack
    assert "&lt;!channel&gt;" in slack and "&amp; co" in slack

    discord = chat_posts(ChatPlatform.discord, content)
    assert all(post["allowed_mentions"] == {"parse": []} for post in discord)
    titles = [e["title"] for post in discord for e in post["embeds"] if "2611" in e.get("url", "")]
    assert titles and all(r"\@everyone \<!channel\> \<\@123\> \*\*bold\*\*" in t for t in titles)
    assert all(r"\[a\]\(b\)" in title for title in titles)

    matrix = chat_posts(ChatPlatform.matrix, content)
    html = "".join(post["formatted_body"] for post in matrix)
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert all(post["m.mentions"] == {} for post in matrix)
    assert "SLAM <b>" in "".join(post["body"] for post in matrix)  # plain body: text as is

    feishu = chat_posts(ChatPlatform.feishu, content)
    markdown = [
        element["text"]["content"]
        for post in feishu
        for element in post["card"]["elements"]
        if element.get("text", {}).get("tag") == "lark_md"
    ]
    assert markdown and not any("<" in text or "**" in text for text in markdown)
    plain = json.dumps(feishu, ensure_ascii=False)
    assert "<at id=all></at>" in plain  # only inside plain_text, which is never markup


def test_javascript_links_never_reach_a_channel():
    paper = make_paper(1, "Title", code_url="javascript:alert(1)", pdf_url="https://a.org/x y")
    content = DigestContent(date(2026, 11, 27), (TopicSection("T", "t", "", (paper,), 1),))
    for platform in ChatPlatform:
        text = json.dumps(chat_posts(platform, content))
        assert "javascript:" not in text and "https://a.org/x%20y" in text
