"""The digest package keeps to what its docstring allows: it builds on the store and the plain
modules, never on the layers that consume it; and `digest.content` never reads the database."""

from __future__ import annotations

import ast
from pathlib import Path

import newsletter.digest

PACKAGE = Path(newsletter.digest.__file__).parent
ALLOWED = {"digest", "store", "models", "config", "textfmt", "languages", "intake", "errors"}


def imported(path: Path) -> set[str]:
    """The modules a file imports, by full name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_digest_package_imports_only_what_it_may():
    for path in sorted(PACKAGE.glob("*.py")):
        ours = {name.split(".")[1] for name in imported(path) if name.startswith("newsletter.")}
        assert ours <= ALLOWED, f"{path.name} imports {sorted(ours - ALLOWED)}"


def test_the_content_module_does_not_touch_the_database():
    names = imported(PACKAGE / "content.py")
    assert not {name for name in names if name.split(".")[0] == "sqlalchemy"}
    assert "newsletter.store" not in names and "newsletter.db" not in names
