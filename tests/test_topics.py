"""Topics: definitions, files, and the `newsletter topics` commands."""

from __future__ import annotations

import json

import pytest

from newsletter.errors import InvalidInput
from newsletter.topics import TopicSpec, read_topic_file, slugify
from tests.conftest import REPO

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
        "    categories: cs.CV\n    exclude: [survey]\n"
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
