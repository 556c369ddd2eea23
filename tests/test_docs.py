"""Documented is a test: every command has help with an example, every setting is in the README."""

from __future__ import annotations

import re

import pytest

from newsletter.config import Settings
from tests.helpers import COMMANDS, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_cli_has_the_commands_the_issue_names():
    names = {" ".join(path) for path, _ in COMMANDS}
    wanted = {
        "init",
        "config",
        "fetch",
        "send",
        "run",
        "preview",
        "serve",
        "worker",
        "db upgrade",
        *(f"topics {verb}" for verb in ("add", "list", "show", "edit", "remove", "import", "test")),
        *(
            f"subscribers {verb}"
            for verb in ("add", "list", "show", "edit", "remove", "import", "export")
        ),
    }
    assert wanted <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example_and_is_in_the_readme(path, command):
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help"
    example = re.search(r"Example: (.+)", command.help)
    assert example, f"`newsletter {' '.join(path)} --help` shows no example"
    assert f"newsletter {' '.join(path)}" in example.group(1)
    assert f"newsletter {' '.join(path)}" in README


@pytest.mark.parametrize("database_url", [None])  # no database involved: run once
@pytest.mark.parametrize("name", sorted(Settings().masked()))
def test_every_setting_is_in_the_readme(name, settings):
    assert f"`{name}`" in README, f"{name} is not documented in README.md"


def test_quick_start_is_two_lines_and_ci_runs_the_second():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line for line in block.strip().splitlines() if line.strip()]
    assert len(lines) == 2
    install_and_run, install_and_test = lines
    assert "pip install ." in install_and_run and install_and_run.endswith("newsletter run")
    assert "'.[test]'" in install_and_test and "pytest" in install_and_test
    assert install_and_test in (REPO / ".ci" / "run").read_text()
