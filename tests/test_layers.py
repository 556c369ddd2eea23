"""The layers of `newsletter` hold: each package imports only those below it, as the contracts
under [tool.importlinter] in pyproject.toml say (checked by import-linter's `lint-imports`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, skip_or_fail_in_ci


def test_every_import_contract_is_kept():
    program = Path(sys.executable).with_name("lint-imports")
    if not program.is_file():
        skip_or_fail_in_ci("lint-imports is not installed (pip install '.[test]')")
    done = subprocess.run(
        [str(program), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"lint-imports found imports the layers forbid:\n{done.stdout}"
    assert "0 broken" in done.stdout, done.stdout
