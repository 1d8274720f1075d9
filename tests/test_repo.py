"""Repository hygiene that CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = re.search(r"```\n(.+?)\n```", section, re.S).group(1).strip()
    pytest_part = command.split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == pytest_part
    assert 'pip install -q --disable-pip-version-check -e ".[test]"' in "\n".join(ci)
