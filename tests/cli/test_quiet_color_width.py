"""-q, --no-color / NO_COLOR and an 80-column terminal (issue 15)."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("args", "first"), [
    (("fit", "qwen2.5-7b"), None),
    (("providers",), "aws"),
    (("config", "list"), None),
])
def test_quiet_prints_only_the_first_column(gpuctl, args: tuple[str, ...], first: str | None) -> None:
    full, quiet = gpuctl(*args), gpuctl(*args, "-q")
    assert full.exit_code == quiet.exit_code == 0, quiet.stderr
    lines = quiet.stdout.splitlines()
    assert lines and all(len(line.split()) == 1 for line in lines), quiet.stdout
    assert set(lines) <= {line.split()[0] for line in full.stdout.splitlines()[2:] if line[:1].strip()}
    if first:
        assert lines[0] == first


def test_quiet_dry_run_prints_the_engine_command(gpuctl) -> None:
    result = gpuctl("up", "qwen2.5-7b", "--dry-run", "-q")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("docker run ")


_ESCAPE = re.compile(r"\x1b\[")


@pytest.mark.parametrize(("env", "flags"), [({"NO_COLOR": "1"}, ()), ({"NO_COLOR": ""}, ("--no-color",))])
def test_no_colour_means_no_bold_either(gpuctl, env: dict[str, str], flags: tuple[str, ...]) -> None:
    forced = {"FORCE_COLOR": "1", **env}  # rich acts as on a terminal
    assert _ESCAPE.search(gpuctl("providers", env={"FORCE_COLOR": "1", "NO_COLOR": ""}).stdout), "styled by default"
    for where in ((*flags, "providers"), ("providers", *flags)):
        result = gpuctl(*where, env=forced)
        assert result.exit_code == 0 and not _ESCAPE.search(result.stdout + result.stderr), result.stdout


@pytest.mark.parametrize("command", [("prices",), ("providers",)])
def test_80_columns_wrap_between_words(gpuctl, command: tuple[str, ...]) -> None:
    def words(text: str) -> list[str]:
        return sorted(word for word in text.split() if not word.startswith("─"))  # the rule is as wide as the table

    wide = gpuctl(*command, env={"COLUMNS": "400"}).stdout
    narrow = gpuctl(*command, env={"COLUMNS": "80"}).stdout
    assert max(map(len, narrow.splitlines())) <= 80
    assert words(narrow) == words(wide)  # every word whole: none cut, none folded
