"""Topics: definitions, files, and the `newsletter topics` commands."""

from __future__ import annotations

import json
import re
import time

import pytest

from newsletter.errors import InvalidInput
from newsletter.intake.topic_files import read_topic_file
from newsletter.intake.topics import TopicSpec, slugify
from tests.helpers import REPO, refuse_rows

SEED_TOPICS = [
    "MLLM",
    "Diffusion",
    "SLAM",
    "SFM",
    "Visual Localization",
    "Keypoint Detection",
    "Image Matching",
    "NeRF",
]


def test_example_file_holds_the_seed_topics_with_fielded_keywords():
    specs = read_topic_file(REPO / "subscribers" / "topics.toml")
    assert [spec.name for spec in specs] == SEED_TOPICS
    assert all(spec.keywords and spec.categories for spec in specs)
    slam = specs[SEED_TOPICS.index("SLAM")]
    # Categories keep out the "SLAM" linguistics papers an unfielded query drags in.
    assert set(slam.categories) == {"cs.CV", "cs.RO"}


def test_yaml_topic_files_read_like_toml(tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text(
        "topics:\n  - name: Gaussian Splatting\n    keywords: [gaussian splatting, 3DGS]\n"
        "    categories: [cs.CV]\n    exclude: [survey]\n"
    )
    (spec,) = read_topic_file(path)
    assert spec == TopicSpec(
        "Gaussian Splatting", "", ("gaussian splatting", "3DGS"), ("cs.CV",), ("survey",)
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[topic]]\nname = "X"\n', "needs at least one keyword"),
        (
            '[[topic]]\nname = "X"\nkeywords = ["a"]\ncategories = ["not a category"]\n',
            "not an arXiv category",
        ),
        ('[[topic]]\nname = "X"\nkeywords = ["a"]\ncolour = "red"\n', "unknown setting(s) colour"),
        ("[[topic]\n", "not valid TOML"),
    ],
)
def test_bad_topic_files_say_what_and_where(tmp_path, text, message):
    path = tmp_path / "topics.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as error:
        read_topic_file(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_slugs_are_url_safe():
    assert slugify("Visual Localization") == "visual-localization"
    assert slugify("3D / 4D Gen!") == "3d-4d-gen"


def test_topics_cli_round_trip(cli, example_topics):
    listed = json.loads(cli("topics", "list", "--json").output)
    assert [row["name"] for row in listed] == SEED_TOPICS

    added = cli(
        "topics",
        "add",
        "Gaussian Splatting",
        "-k",
        "gaussian splatting",
        "-k",
        "3DGS",
        "-c",
        "cs.CV",
        "-x",
        "survey",
        "-d",
        "3D Gaussian splatting.",
    )
    assert (
        '(ti:"gaussian splatting" OR abs:"gaussian splatting" OR ti:3DGS OR abs:3DGS)'
        in added.output
    )
    assert "(cat:cs.CV)" in added.output
    assert "ANDNOT (ti:survey OR abs:survey)" in added.output

    shown = cli("topics", "show", "gaussian SPLATTING").output  # names match in any case
    assert "3D Gaussian splatting." in shown

    cli(
        "topics",
        "edit",
        "Gaussian Splatting",
        "--add-keyword",
        "splatting",
        "--remove-keyword",
        "3DGS",
        "--add-category",
        "cs.GR",
        "--remove-exclude",
        "survey",
    )
    row = next(
        r
        for r in json.loads(cli("topics", "list", "--json").output)
        if r["name"] == "Gaussian Splatting"
    )
    assert row["keywords"] == ["gaussian splatting", "splatting"]
    assert row["categories"] == ["cs.CV", "cs.GR"]
    assert row["exclude"] == []

    cli("topics", "remove", "Gaussian Splatting")
    names = [r["name"] for r in json.loads(cli("topics", "list", "--json").output)]
    assert "Gaussian Splatting" not in names


def test_raw_query_topic(cli):
    cli("topics", "add", "Hinton", "--query", "au:Hinton_G")
    assert "(au:Hinton_G)" in cli("topics", "show", "Hinton").output


def test_duplicate_and_unknown_topics_are_clear_errors(cli, example_topics):
    duplicate = cli("topics", "add", "nerf", "-k", "x", ok=False)
    assert duplicate.exit_code == 1
    assert "exists already" in duplicate.output
    unknown = cli("topics", "show", "Quantum", ok=False)
    assert unknown.exit_code == 1
    assert "unknown topic 'Quantum'" in unknown.output
    assert "known topics: MLLM, Diffusion, SLAM" in unknown.output


def test_removing_a_followed_topic_needs_yes(cli, example_topics):
    cli("subscribers", "add", "ada@example.org", "--topic", "NeRF", "--topic", "SLAM")
    refused = cli("topics", "remove", "NeRF", ok=False)
    assert refused.exit_code != 0
    assert "--yes" in refused.output
    cli("topics", "remove", "NeRF", "--yes")
    person = json.loads(cli("subscribers", "list", "--json").output)[0]
    assert person["topics"] == ["SLAM"]


def test_importing_twice_changes_nothing(cli):
    path = str(REPO / "subscribers" / "topics.toml")
    first = cli("topics", "import", path).output
    assert "8 added" in first
    second = cli("topics", "import", path).output
    assert "0 added, 0 updated" in second


# ------------------------------------------------------- one bad topic never stops the rest

GOOD_BEFORE = '[[topic]]\nname = "Alpha"\nkeywords = ["alpha"]\n\n'
GOOD_AFTER = '\n[[topic]]\nname = "Omega"\nkeywords = ["omega"]\n'


@pytest.mark.parametrize(
    "settings_text, reason",
    [
        ('keywords = ["b"]\nquery = 5', "query must be text (in quotes), got a number (5)"),
        ('name = ["Bad"]\nkeywords = ["b"]', "name must be text (in quotes), got a list"),
        ('keywords = "b, c"', 'keywords must be a list of text, like ["a", "b"]; got text'),
        ("keywords = { b = 1 }", 'keywords must be a list of text, like ["a", "b"]; got a table'),
        ('keywords = ["b", 3]', "keywords item 2 must be text (in quotes), got a number (3)"),
        ('keywords = ["b"]\ndescription = true', "description must be text (in quotes)"),
        ("keywords = ['\"']", "the keyword '\"' has no letter or digit"),
        ("keywords = ['\"\"']", "the keyword '\"\"' has no letter or digit"),
        ('keywords = [")("]', "the keyword ')(' has no letter or digit"),
        ('keywords = ["*"]', "the keyword '*' has no letter or digit"),
        ('keywords = ["b"]\nexclude = ["-"]', "the excluded phrase '-' has no letter or digit"),
        ('keywords = ["b\\u0000c"]', "holds a control character (U+0000 at position 2)"),
        ('keywords = ["b"]\ndescription = "x\\u001b[2J"', "the description holds a control"),
        ('keywords = ["b"]\ncategories = ["cs.CV) OR (all:x"]', "is not an arXiv category"),
        ('keywords = ["b"]\nquery = "au:x) OR (cat:math"', "closes a parenthesis it never opened"),
        ('keywords = ["b"]\nquery = "ti:\\"open"', "leaves a double quote open"),
        ('keywords = ["b"]\ncolour = "red"', "unknown setting(s) colour"),
        ("", "needs at least one keyword or a raw query"),
    ],
)
def test_each_bad_topic_is_reported_and_the_others_imported(cli, tmp_path, settings_text, reason):
    name = 'name = "Bad"\n' if not settings_text.startswith("name") else ""
    path = tmp_path / "topics.toml"
    path.write_text(f"{GOOD_BEFORE}[[topic]]\n{name}{settings_text}\n{GOOD_AFTER}")

    result = cli("topics", "import", str(path), ok=False)

    assert result.exit_code == 1 and "Traceback" not in result.output
    label = "" if settings_text.startswith("name") else " 'Bad'"
    line = next(text for text in result.output.splitlines() if ": rejected: " in text)
    assert line.startswith(f"{path}: topic #2{label}: rejected: ")
    assert reason in line
    assert "2 added, 0 updated, 3 in the file; 1 rejected." in result.output
    names = [row["name"] for row in json.loads(cli("topics", "list", "--json").output)]
    assert names == ["Alpha", "Omega"]

    again = cli("topics", "import", str(path), ok=False)  # the same report, nothing changed
    assert "0 added, 0 updated, 3 in the file; 1 rejected." in again.output
    assert line in again.output


BAD_YAML = """\
topics:
  - name: Alpha
    keywords: [alpha]
  - name: Numbers
    keywords: [NeRF, 360]
  - name: Norway
    keywords: [yes]
  - name: Lone
    keywords: gaussian splatting, 3DGS
  - name: Table
    keywords: {a: 1}
  - just a string
  - name: Surrogate
    keywords: ["half a character: \\ud800"]
  - name: alpha
    keywords: [again]
  - name: Omega
    keywords: [omega]
"""


def test_every_bad_topic_of_a_yaml_file_is_named(cli, tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text(BAD_YAML)

    result = cli("topics", "import", str(path), ok=False)

    assert result.exit_code == 1
    rejected = [text for text in result.output.splitlines() if ": rejected: " in text]
    assert rejected == [
        f"{path}: topic #2 'Numbers': rejected: keywords item 2 must be text (in quotes),"
        " got a number (360)",
        f"{path}: topic #3 'Norway': rejected: keywords item 1 must be text (in quotes),"
        " got a true/false value (true)",
        f"{path}: topic #4 'Lone': rejected: keywords must be a list of text,"
        ' like ["a", "b"]; got text (\'gaussian splatting, 3DGS\')',
        f"{path}: topic #5 'Table': rejected: keywords must be a list of text,"
        ' like ["a", "b"]; got a table',
        f"{path}: topic #6: rejected: expected a table of settings, got text ('just a string')",
        f"{path}: topic #7 'Surrogate': rejected: the keyword 'half a character: \\ud800'"
        " holds an unpaired surrogate (U+D800 at position 19)",
        f"{path}: topic #8 'alpha': rejected: its name repeats topic #1",
    ]
    assert "2 added, 0 updated, 9 in the file; 7 rejected." in result.output
    names = [row["name"] for row in json.loads(cli("topics", "list", "--json").output)]
    assert names == ["Alpha", "Omega"]


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
topics:
  - name: Laughs
    keywords: *i
"""


def test_a_yaml_alias_bomb_is_refused_at_once(cli, tmp_path):
    path = tmp_path / "topics.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.monotonic()

    result = cli("topics", "import", str(path), ok=False)

    assert time.monotonic() - started < 5
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {path}: not valid YAML: aliases (*name) are not allowed" in result.output
    assert json.loads(cli("topics", "list", "--json").output) == []


@pytest.mark.parametrize(
    "filename, text, message",
    [
        (
            "topics.toml",
            '[[topics]]\nname = "X"\n',
            "unknown setting(s) topics; expected [[topic]]",
        ),
        ("topics.toml", 'topic = { name = "X" }\n', "expected [[topic]] tables, got a table"),
        ("topics.toml", "a = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("topics.yaml", "- name: X\n  keywords: [x]\n", "expected a `topics:` list, got a list"),
        ("topics.yaml", "topics: {name: X}\n", "expected a `topics:` list, got a table"),
        ("topics.yaml", "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("topics.json", "{}", "a topic file is .toml or .yaml"),
    ],
)
def test_a_file_that_is_no_topic_file_is_one_clear_error(cli, tmp_path, filename, text, message):
    path = tmp_path / filename
    path.write_text(text)
    result = cli("topics", "import", str(path), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {path}: " in result.output and message in result.output


def test_a_keyword_stays_one_phrase_of_the_query(cli):
    cli(
        "topics",
        "add",
        "Tricky",
        "-k",
        'say "hi") OR all:x AND (y',
        "-k",
        "ti:foo",
        "-k",
        "ANDNOT",
        "-k",
        'x\\" OR y',  # a backslash could escape the closing quote: it goes too
        "-c",
        "cs.CV",
        "-x",
        "a) OR (b",
    )
    shown = cli("topics", "show", "Tricky").output
    query = next(line for line in shown.splitlines() if line.startswith("arXiv query: "))
    phrase = '"say hi ) OR all:x AND (y"'
    assert query == (
        f'arXiv query: (ti:{phrase} OR abs:{phrase} OR ti:"ti:foo" OR abs:"ti:foo"'
        ' OR ti:"ANDNOT" OR abs:"ANDNOT" OR ti:"x OR y" OR abs:"x OR y")'
        ' AND (cat:cs.CV) ANDNOT (ti:"a) OR (b" OR abs:"a) OR (b")'
    )
    # Outside the phrases, nothing but the structure the topic's rules make.
    assert re.sub(r'"[^"]*"', '""', query) == (
        'arXiv query: (ti:"" OR abs:"" OR ti:"" OR abs:"" OR ti:"" OR abs:"" OR ti:"" OR abs:"")'
        ' AND (cat:cs.CV) ANDNOT (ti:"" OR abs:"")'
    )
    (row,) = json.loads(cli("topics", "list", "--json").output)
    assert row["keywords"] == ["say hi ) OR all:x AND (y", "ti:foo", "ANDNOT", "x OR y"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["-k", '""'], "the keyword '\"\"' has no letter or digit"),
        (["-k", "*"], "the keyword '*' has no letter or digit"),
        (["-k", "nerf\x00"], "holds a control character (U+0000 at position 5)"),
        (["-k", "nerf", "-c", "cs.CV OR all:x"], "is not an arXiv category"),
        (["-k", "nerf", "-x", ")("], "the excluded phrase ')(' has no letter or digit"),
        (["--query", "au:x) OR (all:y"], "closes a parenthesis it never opened"),
        (["--query", "(au:x"], "leaves a parenthesis open"),
        (["-k", "nerf", "-d", "one\x1b[2Jline"], "the description holds a control character"),
    ],
)
def test_topics_add_and_edit_refuse_what_a_file_may_not_hold(cli, options, message):
    added = cli("topics", "add", "Radiance", *options, ok=False)
    assert added.exit_code == 1 and "Traceback" not in added.output
    assert "Error: " in added.output and message in added.output
    assert json.loads(cli("topics", "list", "--json").output) == []

    cli("topics", "add", "Radiance", "-k", "radiance field")
    before = cli("topics", "list", "--json").output
    edits = {"-k": "--add-keyword", "-c": "--add-category", "-x": "--add-exclude"}
    edit = [edits.get(option, option) for option in options]  # --query and -d are the same
    edited = cli("topics", "edit", "Radiance", *edit, ok=False)
    assert edited.exit_code == 1 and message in edited.output
    assert cli("topics", "list", "--json").output == before


def test_a_keyword_stored_before_the_checks_can_still_be_removed(cli, settings):
    from newsletter import store
    from newsletter.db import session_scope

    cli("topics", "add", "Old", "-k", "old")
    with session_scope(settings) as session:  # as an older version could have stored it
        store.get_topic(session, "Old").keywords = ["old", "*"]
    cli("topics", "edit", "Old", "--remove-keyword", "*")
    (row,) = json.loads(cli("topics", "list", "--json").output)
    assert row["keywords"] == ["old"]


def test_a_topic_the_database_refuses_is_reported_and_the_rest_kept(cli, settings, tmp_path):
    cli("init")
    refuse_rows(settings, "topics", "name", "Refused")
    path = tmp_path / "topics.toml"
    path.write_text(f'{GOOD_BEFORE}[[topic]]\nname = "Refused"\nkeywords = ["no"]\n{GOOD_AFTER}')

    result = cli("topics", "import", str(path), ok=False)

    assert result.exit_code == 1
    assert (
        f"{path}: topic #2 'Refused': rejected: the database refused it: refused by a test trigger"
        in result.output
    )
    assert "2 added, 0 updated, 3 in the file; 1 rejected." in result.output
    names = [row["name"] for row in json.loads(cli("topics", "list", "--json").output)]
    assert names == ["Alpha", "Omega"]


def test_topic_names_match_whatever_their_case_and_spacing(cli, example_topics):
    assert "Visual Localization" in cli("topics", "show", "visual   LOCALIZATION").output
    duplicate = cli("topics", "add", "Visual  localization", "-k", "x", ok=False)
    assert "exists already" in duplicate.output
