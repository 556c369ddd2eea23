"""Subscribers: addresses, languages, mail formats, CSV import and export, and the CLI."""

from __future__ import annotations

import json

import pytest

from newsletter.delivery.bounces import apply_bounce
from newsletter.errors import InvalidInput
from newsletter.intake.subscribers import (
    normalise_email,
    normalise_format,
    normalise_language,
    read_subscriber_csv,
)
from newsletter.models import MailFormat
from tests.helpers import REPO, refuse_rows, write_locked


def people(cli) -> list[dict]:
    return json.loads(cli("subscribers", "list", "--json").output)


def test_addresses_are_validated_and_normalised():
    assert normalise_email("  Ada@EXAMPLE.org ") == "Ada@example.org"
    for bad in ["ada", "ada@", "@example.org", "ada@@example.org", "ada@exa mple.org", ""]:
        with pytest.raises(InvalidInput, match="not a valid email address"):
            normalise_email(bad)


def test_languages_are_bcp47():
    assert normalise_language("zh-tw") == "zh-TW"
    assert normalise_language("pt_BR") == "pt-BR"
    with pytest.raises(InvalidInput, match="BCP-47"):
        normalise_language("chinese please")


def test_mail_formats_are_html_or_text():
    assert normalise_format(" TEXT ") is MailFormat.text
    assert normalise_format("html") is MailFormat.html
    with pytest.raises(InvalidInput, match="not a mail format"):
        normalise_format("pdf")


def test_add_list_show_edit_remove(cli, example_topics):
    cli(
        "subscribers",
        "add",
        "Ada@Example.org",
        "-t",
        "MLLM",
        "-t",
        "Diffusion",
        "--name",
        "Ada",
        "--lang",
        "zh",
    )
    (ada,) = people(cli)
    assert ada["email"] == "Ada@example.org"
    assert ada["topics"] == ["MLLM", "Diffusion"]
    assert ada["language"] == "zh"
    assert ada["format"] == "html"  # the default
    assert ada["status"] == "active"

    again = cli("subscribers", "add", "ADA@example.ORG", "-t", "SLAM", ok=False)
    assert again.exit_code == 1 and "subscribed already" in again.output

    cli(
        "subscribers",
        "edit",
        "ada@example.org",
        "--add-topic",
        "NeRF",
        "--remove-topic",
        "MLLM",
        "--lang",
        "ja",
    )
    (ada,) = people(cli)
    assert ada["topics"] == ["Diffusion", "NeRF"]
    assert ada["language"] == "ja"
    assert ada["format"] == "html"  # an edit that does not name the format keeps it

    cli("subscribers", "remove", "ada@example.org")
    (ada,) = people(cli)
    assert ada["status"] == "unsubscribed"
    history = cli("subscribers", "show", "ada@example.org").output
    assert "subscribed" in history and "unsubscribed" in history and "via cli" in history

    assert people(cli) and not json.loads(
        cli("subscribers", "list", "--status", "active", "--json").output
    )
    cli("subscribers", "remove", "ada@example.org", "--purge")
    assert people(cli) == []


def test_format_is_chosen_shown_and_changed(cli, example_topics):
    added = cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "--format", "text")
    assert "(en, text)" in added.output
    cli("subscribers", "add", "bo@example.org", "-t", "SLAM", "--lang", "zh")
    rows = {p["email"]: p for p in people(cli)}
    assert rows["ada@example.org"]["format"] == "text"
    assert rows["bo@example.org"]["format"] == "html"

    table = cli("subscribers", "list").output
    assert "Format" in table
    ada_line = next(line for line in table.splitlines() if "ada@example.org" in line)
    bo_line = next(line for line in table.splitlines() if "bo@example.org" in line)
    assert "text" in ada_line and "html" not in ada_line
    assert "html" in bo_line
    assert "    format: text" in cli("subscribers", "show", "ada@example.org").output

    edited = cli("subscribers", "edit", "bo@example.org", "--format", "TEXT")
    assert "(zh, text, active)" in edited.output
    assert people(cli)[1]["format"] == "text"
    shown = cli("subscribers", "show", "bo@example.org").output
    assert "    format: text" in shown
    assert "changed       via cli       SLAM (zh, text)" in shown  # the change is in the history

    cli("subscribers", "edit", "bo@example.org", "--format", "html")
    assert people(cli)[1]["format"] == "html"


def test_a_bad_format_is_a_clear_error_and_changes_nothing(cli, example_topics):
    result = cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "--format", "pdf", ok=False)
    assert result.exit_code == 1
    assert "Error: 'pdf' is not a mail format (use html or text)" in result.output
    assert "Traceback" not in result.output
    assert people(cli) == []

    cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "--format", "text")
    before = people(cli)
    history = cli("subscribers", "show", "ada@example.org").output
    result = cli(
        "subscribers",
        "edit",
        "ada@example.org",
        "--add-topic",
        "NeRF",
        "--lang",
        "fr",
        "--format",
        "markdown",
        ok=False,
    )
    assert result.exit_code == 1
    assert "Error: 'markdown' is not a mail format (use html or text)" in result.output
    assert people(cli) == before  # neither the topic, the language nor the format changed
    assert cli("subscribers", "show", "ada@example.org").output == history  # nothing logged


def test_unknown_topic_lists_known_ones(cli, example_topics):
    result = cli("subscribers", "add", "ada@example.org", "-t", "Quantum", ok=False)
    assert result.exit_code == 1
    assert "unknown topic 'Quantum'" in result.output and "Image Matching" in result.output
    assert people(cli) == []


def test_list_filters_by_topic(cli, example_topics):
    cli("subscribers", "import", str(REPO / "subscribers" / "example.csv"))
    slam = json.loads(cli("subscribers", "list", "--topic", "SLAM", "--json").output)
    assert [p["email"] for p in slam] == ["bo@example.org"]


BROKEN_CSV = """email,name,topics,language
ada@example.org,Ada,MLLM;Diffusion,en
not-an-address,Bad,MLLM,en
bo@example.org,Bo,SLAM,klingon please
cy@example.org,Cy,Quantum,de
dee@example.org,Dee,,en
ADA@example.org,Ada again,NeRF,en
eve@example.org,"Eve, Q.",NeRF; SFM ,zh-tw
"""


def test_import_reports_each_bad_row_and_keeps_the_good(cli, example_topics, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(BROKEN_CSV)
    result = cli("subscribers", "import", str(path), ok=False)
    assert result.exit_code == 1
    for line, reason in [
        (3, "not a valid email address"),
        (4, "not a language code"),
        (5, "unknown topic 'Quantum'"),
        (6, "no topics"),
        (7, "repeats line 2"),
    ]:
        assert f"people.csv:{line}: rejected: " in result.output
        assert reason in result.output.split(f"people.csv:{line}: rejected: ")[1].splitlines()[0]
    assert "2 added; 5 rejected" in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert set(rows) == {"ada@example.org", "eve@example.org"}
    assert rows["eve@example.org"]["topics"] == ["SFM", "NeRF"]  # topic order, not file order
    assert rows["eve@example.org"]["language"] == "zh-TW"
    assert rows["eve@example.org"]["name"] == "Eve, Q."

    again = cli("subscribers", "import", str(path), ok=False)
    assert "2 unchanged" in again.output
    assert people(cli) == list(rows.values())


def test_a_quote_left_open_keeps_the_rows_before_and_rejects_the_rest_in_one_line(
    cli, example_topics, tmp_path
):
    # The open quote swallows every line after it into one field, past csv's field limit.
    after = "".join(f"reader{n}@example.org,Reader {n},SLAM\n" for n in range(5000))
    path = tmp_path / "people.csv"
    path.write_text(
        'email,name,topics\nada@example.org,Ada,MLLM\nbo@example.org,"Bo,SLAM\n' + after
    )

    result = cli("subscribers", "import", str(path), ok=False)

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert rejections(result.output, "people.csv") == {
        3: "the CSV cannot be read from this line on (field larger than field limit (131072):"
        " a quote left open?); nothing from here to the end is imported"
    }
    assert "1 added; 1 rejected." in result.output
    assert [row["email"] for row in people(cli)] == ["ada@example.org"]


def test_import_never_resubscribes_and_update_overwrites(cli, example_topics, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,topics,language\nada@example.org,Ada,MLLM,en\nbo@example.org,Bo,SLAM,en\n"
    )
    cli("subscribers", "import", str(path))
    cli("subscribers", "remove", "bo@example.org")
    path.write_text(
        "email,name,topics,language\nada@example.org,Ada L.,NeRF,fr\nbo@example.org,Bo,SLAM,en\n"
    )
    result = cli("subscribers", "import", str(path), "--update")
    assert "1 left unsubscribed" in result.output and "1 updated" in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert rows["bo@example.org"]["status"] == "unsubscribed"
    assert rows["ada@example.org"]["topics"] == ["NeRF"]
    assert rows["ada@example.org"]["language"] == "fr"


def test_import_reads_the_format_column(cli, example_topics, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,topics,language,format\n"
        "ada@example.org,Ada,MLLM,en,text\n"
        "bo@example.org,Bo,SLAM,zh,pdf\n"
        "cy@example.org,Cy,NeRF,de,\n"
        "dee@example.org,Dee,SFM,en, HTML \n"
    )
    result = cli("subscribers", "import", str(path), ok=False)
    assert result.exit_code == 1
    line = result.output.split("people.csv:3: rejected: ")[1].splitlines()[0]
    assert "'pdf' is not a mail format (use html or text)" in line
    assert "3 added; 1 rejected" in result.output
    formats = {p["email"]: p["format"] for p in people(cli)}
    assert formats == {
        "ada@example.org": "text",
        "cy@example.org": "html",
        "dee@example.org": "html",
    }

    path.write_text("email,name,topics,language,format\nada@example.org,Ada,MLLM,en,html\n")
    assert "1 unchanged" in cli("subscribers", "import", str(path)).output
    assert people(cli)[0]["format"] == "text"  # without --update a known address is kept
    assert "1 updated" in cli("subscribers", "import", str(path), "--update").output
    assert people(cli)[0]["format"] == "html"

    # A list without the column (an older export, a master list) leaves each reader's own choice.
    cli("subscribers", "edit", "ada@example.org", "--format", "text")
    path.write_text("email,name,topics,language\nada@example.org,Ada Lovelace,MLLM,en\n")
    assert "1 updated" in cli("subscribers", "import", str(path), "--update").output
    assert people(cli)[0]["format"] == "text" and people(cli)[0]["name"] == "Ada Lovelace"


def test_csv_without_the_needed_columns_is_refused():
    with pytest.raises(InvalidInput, match="missing: topics"):
        read_subscriber_csv("email,name\na@example.org,A\n", default_language="en")


def test_export_reimports_to_the_same_list(cli, example_topics, tmp_path):
    cli("subscribers", "import", str(REPO / "subscribers" / "example.csv"))
    cli("subscribers", "edit", "ada@example.org", "--format", "text")
    exported = tmp_path / "out.csv"
    cli("subscribers", "export", "-o", str(exported))
    before = people(cli)
    assert {p["format"] for p in before} == {"text", "html"}
    cli("subscribers", "remove", "ada@example.org", "--purge")
    cli("subscribers", "import", str(exported))
    after = {p["email"]: p for p in people(cli)}
    assert set(after) == {p["email"] for p in before}
    for person in before:
        for key in ("name", "topics", "language", "format"):
            assert after[person["email"]][key] == person[key], (person["email"], key)
    assert after["ada@example.org"]["format"] == "text"
    stdout = cli("subscribers", "export").output
    assert stdout.splitlines()[0] == (
        "email,name,topics,language,format,follows,cadence,day,hour,timezone,status"
    )
    assert stdout.splitlines()[1].startswith("bo@example.org,")  # ada was re-added last
    line = (
        "ada@example.org,Ada Lovelace,MLLM;Diffusion,en,text,Kaiming He;Saining Xie,daily,,,,active"
    )
    assert line in stdout.splitlines()  # her follows went out and came back


def test_public_ids_are_unguessable_and_distinct(cli, example_topics, settings):
    cli("subscribers", "import", str(REPO / "subscribers" / "example.csv"))
    from newsletter import store
    from newsletter.db import session_scope

    with session_scope(settings) as session:
        ids = [s.public_id for s in store.list_subscribers(session)]
    assert len(set(ids)) == 3
    assert all(len(public_id) >= 22 for public_id in ids)  # 128 random bits, URL-safe


# ---------------------------------------------------------------- one bad row never stops the rest


def rejections(output: str, filename: str) -> dict[int, str]:
    """`{line: reason}` of an import's report."""
    found = {}
    for text in output.splitlines():
        if text.startswith(f"{filename}:") or f"/{filename}:" in text:
            where, _, reason = text.partition(": rejected: ")
            found[int(where.rsplit(":", 1)[1])] = reason
    return found


def imported(cli, tmp_path, csv_text: str):
    """`subscribers import` of the CSV (as people.csv, some rows rejected): the result, and
    its report's `{line: reason}`."""
    path = tmp_path / "people.csv"
    path.write_text(csv_text, encoding="utf-8")
    result = cli("subscribers", "import", str(path), ok=False)
    return result, rejections(result.output, "people.csv")


def history(settings, email: str) -> list[tuple[str, str]]:
    from newsletter import store
    from newsletter.db import session_scope

    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, email)
        return [(event.kind, event.detail) for event in store.events_of(session, subscriber)]


MIXED_CSV = (
    "email,name,topics,language\n"
    "ada@example.org,Ada,MLLM,en\n"  # 2
    "bo@example.org,Bo,MLLM;mllm; MLLM ,en\n"  # 3: one topic, three spellings
    "cy@example.org,Cy\x00Nul,SLAM,en\n"  # 4: a NUL (SQLite stores it, PostgreSQL refuses)
    "dee@example.org,Dee,Quantum,en\n"  # 5: no such topic
    "eve@example.org,Refused,NeRF,en\n"  # 6: the database refuses it
    "fay@example.org,Fay,visual localization;Visual Localization;SLAM,de\n"  # 7
    "gus@example.org,\x1b[31mGus,SLAM,en\n"  # 8: a terminal escape sequence
    'hal@example.org,"Hal\n  Jordan",SFM,en\n'  # 9-10: a line break in a name is a space
    "ida@example.org,Ida,SLAM\x07,en\n"  # 11: a bell in the topics
)


def test_import_keeps_exactly_the_rows_it_reports(cli, example_topics, settings, tmp_path):
    refuse_rows(settings, "subscribers", "name", "Refused")
    path = tmp_path / "people.csv"
    path.write_text(MIXED_CSV, encoding="utf-8")

    result = cli("subscribers", "import", str(path), ok=False)

    assert result.exit_code == 1 and "Traceback" not in result.output
    reasons = rejections(result.output, "people.csv")
    assert sorted(reasons) == [4, 5, 6, 8, 11]
    assert reasons[4] == "the name column holds a control character (U+0000 at position 3)"
    assert reasons[5].startswith("unknown topic 'Quantum'")
    assert reasons[6] == "the database refused it: refused by a test trigger"
    assert reasons[8] == "the name column holds a control character (U+001B at position 1)"
    assert reasons[11] == "the topics column holds a control character (U+0007 at position 5)"
    assert "4 added; 5 rejected." in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert sorted(rows) == [f"{who}@example.org" for who in ("ada", "bo", "fay", "hal")]
    assert rows["bo@example.org"]["topics"] == ["MLLM"]
    assert rows["fay@example.org"]["topics"] == ["SLAM", "Visual Localization"]
    assert rows["hal@example.org"]["name"] == "Hal Jordan"
    assert history(settings, "bo@example.org") == [("subscribed", "MLLM")]

    again = cli("subscribers", "import", str(path), ok=False)
    assert rejections(again.output, "people.csv") == reasons
    assert "4 unchanged; 5 rejected." in again.output
    assert people(cli) == list(rows.values())


def test_an_update_the_database_refuses_is_undone_alone(cli, example_topics, settings, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email,name,topics\nada@example.org,Ada,MLLM\nbo@example.org,Bo,SLAM\n")
    cli("subscribers", "import", str(path))
    refuse_rows(settings, "subscribers", "name", "Refused")
    path.write_text("email,name,topics\nada@example.org,Refused,NeRF\nbo@example.org,Bo,SFM\n")

    result = cli("subscribers", "import", str(path), "--update", ok=False)

    assert rejections(result.output, "people.csv") == {
        2: "the database refused it: refused by a test trigger"
    }
    assert "1 updated; 1 rejected." in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert (rows["ada@example.org"]["name"], rows["ada@example.org"]["topics"]) == ("Ada", ["MLLM"])
    assert rows["bo@example.org"]["topics"] == ["SFM"]
    assert [kind for kind, _ in history(settings, "ada@example.org")] == ["subscribed"]


CHUNKED_CSV = (
    "email,name,topics,language,follows,cadence,day,hour,timezone\n"
    "ada@example.org,Ada,MLLM,en,Kaiming He;Saining Xie,weekly,mon,7,Asia/Shanghai\n"  # 2
    "bo@example.org,Bo,Quantum,en,,,,,\n"  # 3: no such topic
    "cy@example.org,Refused,SLAM,en,,,,,\n"  # 4: the database refuses it, in the first chunk
    "dee@example.org,Dee,slam;NeRF,de,,,,25,\n"  # 5: kept, without the hour
    "ADA@example.org,Ada again,SLAM,en,,,,,\n"  # 6: repeats line 2
    "eve@example.org,Eve,SFM,klingon please,,,,,\n"  # 7: no language
    "known@example.org,Known,MLLM,en,,,,,\n"  # 8: on the list already
    "fay@example.org,Fay,Diffusion,fr,,daily,fri,,\n"  # 9: kept, without the weekday
    "gus@example.org,Refused,NeRF,en,,,,,\n"  # 10: refused, in the second chunk
    "hal@example.org,Hal,MLLM;SFM,zh,,,,,\n"  # 11
)


def test_a_chunk_with_a_refused_row_keeps_its_other_rows(
    cli, example_topics, settings, tmp_path, monkeypatch
):
    # Chunks of 3 rows: lines 2, 4, 5 | 8, 9, 10 | 11. Each of the first two holds a row the
    # database refuses (and the second a known address): each is written again row by row,
    # and the report is the one a row at a time always gave.
    from newsletter.store import subscriber_import

    monkeypatch.setattr(subscriber_import, "IMPORT_CHUNK", 3)
    refuse_rows(settings, "subscribers", "name", "Refused")
    cli("subscribers", "add", "known@example.org", "--topic", "SLAM", "--name", "Old Name")
    path = tmp_path / "people.csv"
    path.write_text(CHUNKED_CSV, encoding="utf-8")

    result = cli("subscribers", "import", str(path), ok=False)

    reasons = rejections(result.output, "people.csv")
    assert reasons == {
        3: reasons[3],
        4: "the database refused it: refused by a test trigger",
        5: "hour: not changed, the rest of the row is kept: '25' is not an hour: use a whole"
        " hour from 0 to 23 (7, 07 or 7:00), or none for as soon as the digest is built",
        6: "ADA@example.org repeats line 2",
        7: reasons[7],
        9: "day: not changed, the rest of the row is kept: a weekday goes with a weekly"
        " cadence only",
        10: "the database refused it: refused by a test trigger",
    }
    assert reasons[3].startswith("unknown topic 'Quantum'; known topics: MLLM, ")
    assert reasons[7].startswith("'klingon please' is not a language code")
    assert "4 added, 1 unchanged; 7 rejected." in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert sorted(rows) == [f"{who}@example.org" for who in ("ada", "dee", "fay", "hal", "known")]
    ada = rows["ada@example.org"]
    assert (ada["follows"], ada["cadence"], ada["day"], ada["hour"], ada["timezone"]) == (
        ["Kaiming He", "Saining Xie"],
        "weekly",
        "mon",
        7,
        "Asia/Shanghai",
    )
    assert ada["next_send_at"] is not None
    assert sorted(rows["dee@example.org"]["topics"]) == ["NeRF", "SLAM"]
    assert rows["dee@example.org"]["hour"] is None and rows["fay@example.org"]["day"] is None
    assert (rows["hal@example.org"]["language"], rows["known@example.org"]["name"]) == (
        "zh",
        "Old Name",
    )
    assert history(settings, "ada@example.org") == [("subscribed", "MLLM")]
    assert history(settings, "hal@example.org") == [("subscribed", "MLLM, SFM")]

    again = cli("subscribers", "import", str(path), "--update", ok=False)

    assert rejections(again.output, "people.csv") == reasons
    assert "4 unchanged, 1 updated; 7 rejected." in again.output
    known = {p["email"]: p for p in people(cli)}["known@example.org"]
    assert (known["name"], known["topics"]) == ("Known", ["MLLM"])
    assert [kind for kind, _ in history(settings, "known@example.org")] == [
        "subscribed",
        "changed",
    ]


LATER_TABLES_CSV = (
    "email,name,topics,language,format,follows\n"
    "ada@example.org,Ada,MLLM,en,text,Kaiming He\n"  # 2
    "bo@example.org,Bo,NeRF,de,,\n"  # 3: its event refused (after its subscriber row is in)
    "cy@example.org,Cy,SLAM;SFM,zh-tw,,\n"  # 4
    "known@example.org,Known,SFM,en,,\n"  # 5: on the list already
    "dee@example.org,Dee,SLAM,fr,,Yann LeCun\n"  # 6: its follow refused
    "ADA@example.org,Ada again,SLAM,en,,\n"  # 7: repeats line 2
    "eve@example.org,Eve,Diffusion,en,html,\n"  # 8
)


def test_a_chunk_refused_at_a_later_table_keeps_its_other_rows(
    cli, example_topics, settings, tmp_path, monkeypatch
):
    # Chunks of 3 rows: lines 2, 3, 4 | 5, 6, 8. The database refuses a row's event in the
    # first chunk and a row's follow in the second, after each chunk's subscribers are in:
    # the whole chunk is undone (its subscribers too) and written again row by row, so the
    # refused rows leave nothing behind, on both backends.
    from sqlalchemy import text

    from newsletter import db
    from newsletter.store import subscriber_import

    monkeypatch.setattr(subscriber_import, "IMPORT_CHUNK", 3)
    cli("subscribers", "add", "known@example.org", "--topic", "SLAM", "--name", "Old Name")
    refuse_rows(settings, "events", "detail", "NeRF")
    refuse_rows(settings, "follows", "name", "Yann LeCun")
    result, rejected = imported(cli, tmp_path, LATER_TABLES_CSV)

    assert rejected == {
        3: "the database refused it: refused by a test trigger",
        6: "the database refused it: refused by a test trigger",
        7: "ADA@example.org repeats line 2",
    }
    assert "3 added, 1 unchanged; 3 rejected." in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert sorted(rows) == [f"{who}@example.org" for who in ("ada", "cy", "eve", "known")]
    assert (rows["ada@example.org"]["format"], rows["ada@example.org"]["follows"]) == (
        "text",
        ["Kaiming He"],
    )
    assert (rows["cy@example.org"]["language"], rows["cy@example.org"]["topics"]) == (
        "zh-TW",
        ["SLAM", "SFM"],
    )
    assert (rows["known@example.org"]["name"], rows["known@example.org"]["topics"]) == (
        "Old Name",
        ["SLAM"],
    )
    assert history(settings, "cy@example.org") == [("subscribed", "SLAM, SFM")]
    # Nothing of the refused rows is left in any table; what the chunk wrote is what
    # `subscribers add` writes (the model's defaults included).
    with db.engine_for(settings.database_url).connect() as connection:
        left = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM subscribers), (SELECT count(*) FROM"
                " subscriber_topics), (SELECT count(*) FROM follows), (SELECT count(*) FROM"
                " events WHERE kind = 'subscribed')"
            )
        ).one()
        written = connection.execute(
            text(
                "SELECT email, status, format, cadence, bounce_count, ranking,"
                " next_send_at IS NULL FROM subscribers ORDER BY email"
            )
        ).all()
    assert tuple(left) == (4, 5, 1, 4)
    assert [tuple(row)[1:] for row in written] == [
        ("active", "text", "daily", 0, True, True),
        ("active", "html", "daily", 0, True, True),
        ("active", "html", "daily", 0, True, True),
        ("active", "html", "daily", 0, True, True),
    ]


LAST_TABLE_CSV = (
    "email,name,topics,language\n"
    "ada@example.org,Ada,MLLM,en\n"  # 2
    "bo@example.org,Bo,NeRF,de\n"  # 3: its topic refused, seen once the next chunk is read
    "cy@example.org,Cy,SLAM;SFM,zh-tw\n"  # 4
    "dee@example.org,Dee,SLAM,fr\n"  # 5
    "eve@example.org,Eve,Diffusion,en\n"  # 6
    "fay@example.org,Fay,MLLM,en\n"  # 7
    "gus@example.org,Gus,SLAM;NeRF,en\n"  # 8: its topic refused, in the last chunk
)


def test_a_refusal_of_the_rows_sent_last_is_seen_after_the_next_chunk_is_read(
    cli, example_topics, settings, tmp_path, monkeypatch
):
    # Chunks of 3 rows: lines 2, 3, 4 | 5, 6, 7 | 8. A chunk's topics are its last rows sent,
    # and the next chunk is read before the database's answer to them is: a refusal then
    # still undoes that chunk alone (not the one read meanwhile) and writes it again row by
    # row, and the last chunk's answer is waited for before the import ends.
    from sqlalchemy import text

    from newsletter import db
    from newsletter.store import subscriber_import

    monkeypatch.setattr(subscriber_import, "IMPORT_CHUNK", 3)
    engine = db.engine_for(settings.database_url)
    with engine.connect() as connection:
        nerf = connection.execute(text("SELECT id FROM topics WHERE name = 'NeRF'")).scalar_one()
    refuse_rows(settings, "subscriber_topics", "topic_id", nerf)
    result, rejected = imported(cli, tmp_path, LAST_TABLE_CSV)

    assert rejected == {
        3: "the database refused it: refused by a test trigger",
        8: "the database refused it: refused by a test trigger",
    }
    assert "5 added; 2 rejected." in result.output
    rows = {p["email"]: p for p in people(cli)}
    assert sorted(rows) == [f"{who}@example.org" for who in ("ada", "cy", "dee", "eve", "fay")]
    assert sorted(rows["cy@example.org"]["topics"]) == ["SFM", "SLAM"]
    assert history(settings, "dee@example.org") == [("subscribed", "SLAM")]
    with engine.connect() as connection:
        left = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM subscribers), (SELECT count(*) FROM"
                " subscriber_topics), (SELECT count(*) FROM events WHERE kind = 'subscribed')"
            )
        ).one()
    assert tuple(left) == (5, 6, 5)


def test_a_locked_database_fails_the_import_in_one_line_and_imports_nothing(
    cli, example_topics, settings, tmp_path
):
    # Not a verdict on any row: every one would meet the same lock. Said once, exit 4.
    from newsletter.cli.common import ExitStatus
    from newsletter.db import lock_timeout

    path = tmp_path / "people.csv"
    path.write_text("email,name,topics\nada@example.org,Ada,MLLM\nbo@example.org,Bo,SLAM\n")

    # The CLI's own wait (30 s) shortened, as the web app shortens its own.
    with write_locked(settings, at_most=30), lock_timeout(1.0):
        result = cli("subscribers", "import", str(path), ok=False)

    assert result.exit_code == ExitStatus.DATABASE, result.output
    assert "rejected" not in result.output and "Traceback" not in result.output
    (line,) = [text for text in result.output.splitlines() if text.startswith("Error: ")]
    assert line.startswith("Error: NEWSLETTER_DATABASE_URL=")
    assert "database is locked" in line or "lock timeout" in line
    assert people(cli) == []


def test_repeated_topics_on_add_and_edit_are_one(cli, example_topics, settings):
    added = cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "-t", "mllm", "-t", " MLLM")
    assert "to MLLM." in added.output
    cli("subscribers", "edit", "ada@example.org", "--add-topic", "nerf", "--add-topic", "NeRF")
    assert people(cli)[0]["topics"] == ["MLLM", "NeRF"]
    assert history(settings, "ada@example.org")[0] == ("subscribed", "MLLM")


@pytest.mark.parametrize(
    "option, value, shown",
    [
        ("--name", "Ada\x00", "the name holds a control character (U+0000 at position 4)"),
        ("--name", "\x1b]0;pwned\x07", "the name holds a control character (U+001B at position 1)"),
        ("--topic", "SLAM\x00", "the topic name 'SLAM\\x00' holds a control character (U+0000"),
        ("--name", "A" * 201, "the name is over 200 characters"),
    ],
)
def test_control_characters_are_refused_on_add_and_edit(cli, example_topics, option, value, shown):
    result = cli("subscribers", "add", "ada@example.org", "-t", "MLLM", option, value, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {shown}" in result.output
    assert people(cli) == []

    cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "--name", "Ada")
    before = people(cli)
    edit_option = "--add-topic" if option == "--topic" else option
    result = cli("subscribers", "edit", "ada@example.org", edit_option, value, ok=False)
    assert result.exit_code == 1 and f"Error: {shown}" in result.output
    assert people(cli) == before


def test_a_line_break_in_a_name_becomes_a_space(cli, example_topics):
    cli("subscribers", "add", "ada@example.org", "-t", "MLLM", "--name", " Ada\r\n\tLovelace ")
    assert people(cli)[0]["name"] == "Ada Lovelace"
    cli("subscribers", "edit", "ada@example.org", "--name", "Ada\nKing")
    assert people(cli)[0]["name"] == "Ada King"


def test_resubscribe_on_the_command_line_forgets_old_hard_failures(cli, example_topics, settings):
    from newsletter import store
    from newsletter.db import session_scope
    from newsletter.delivery.bounces import Bounce

    cli("subscribers", "add", "ada@example.org", "-t", "MLLM")
    full = Bounce("ada@example.org", "failed", "5.2.2", "mailbox full")

    def bounce() -> tuple[str, str, int]:
        with session_scope(settings) as session:
            outcome = apply_bounce(session, full)
            subscriber = store.get_subscriber(session, "ada@example.org")
            return outcome, subscriber.status.value, subscriber.bounce_count

    assert [bounce() for _ in range(3)][-1] == ("bounced", "bounced", 3)

    shown = cli("subscribers", "edit", "ada@example.org", "--resubscribe").output
    assert "active" in shown
    # As after the preferences page's "resubscribe": one more failure counts, it does not bounce.
    assert bounce() == ("counted", "active", 1)
    assert ("active", "came back") in history(settings, "ada@example.org")
