"""docs/reference.md is every command's --help, regenerated here and compared with the committed file."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from gpuctl.cli.commands import COMMANDS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_current() -> None:
    shipped = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert shipped == generator().render(), (
        "docs/reference.md is stale (a command's --help changed): run python docs/gen_reference.py and commit it")


def test_reference_covers_every_command_and_subcommand(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # the terminal must not change the text
    text = generator().render()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings[0] == "gpuctl"
    assert {f"gpuctl {name}" for name in COMMANDS} <= set(headings)
    assert {"gpuctl models show", "gpuctl config set"} <= set(headings)
    assert "Usage: gpuctl prices [OPTIONS]" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("- [")) <= 100
    assert text == (DOCS / "reference.md").read_text(encoding="utf-8")


def test_links_between_docs_resolve() -> None:
    broken = [f"{page.name}: {target}" for page in sorted(DOCS.glob("*.md"))
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
              if not target.startswith(("http://", "https://")) and not (page.parent / target).exists()]
    assert not broken, f"links to missing files: {broken}"
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    unlisted = [page.name for page in DOCS.glob("*.md") if page.name != "README.md" and f"({page.name})" not in index]
    assert not unlisted, f"docs/README.md does not list {unlisted}"
