"""Answering no at a confirmation (issue 15: it printed "interrupted"): exit 130 with a line saying so, nothing done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.app import App
from gpuctl.errors import ExitCode
from tests.fakehost.cloud import add_deployment


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(App, "can_prompt", property(lambda self: not self.json))


def _refused_record(project: Path) -> None:
    add_deployment(project, "never-ran", provider="runpod", status="failed",
                   attempts=[{"provider": "runpod", "offer_id": "x", "idempotency_token": "t", "refused": True}])


def test_no_at_the_gc_question_exits_130_and_removes_nothing(gpuctl, isolated: Path, terminal: None) -> None:
    _refused_record(isolated)
    result = gpuctl("gc", input="n\n")
    assert result.exit_code == ExitCode.INTERRUPTED, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "answer was no" in line and "interrupted" not in result.stderr
    state = json.loads((isolated / ".gpuctl" / "state.json").read_text())
    assert state["deployments"]["never-ran"]["status"] == "failed"


def test_yes_at_the_gc_question_goes_on(gpuctl, isolated: Path, terminal: None) -> None:
    _refused_record(isolated)
    assert gpuctl("gc", input="y\n").exit_code == 0
