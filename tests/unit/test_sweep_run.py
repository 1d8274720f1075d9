"""Running a sweep's candidates: side by side in forked children, within the budget, cleaned up on interrupt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuctl.errors import HealthCheckError
from gpuctl.events import NullReporter
from gpuctl.sweep.plan import Candidate
from gpuctl.sweep.results import CandidateResult
from gpuctl.sweep.run import run_candidates
from tests.unit.test_sweep_plan import plan

REPO = Path(__file__).resolve().parents[2]


def candidates(ctx, costs: list[float]) -> list[Candidate]:
    sweep = plan(ctx)
    return [c.model_copy(update={"cost_usd": cost, "name": f"c{i}"})
            for i, (c, cost) in enumerate(zip(sweep.candidates, costs, strict=False))]


@pytest.fixture
def ctx(isolated: Path):
    from gpuctl.deploy.context import DeployContext
    from gpuctl.state import StateStore
    from tests.fakehost.cloud import registry

    return DeployContext(store=StateStore(isolated), registry=registry())


def test_in_turn_a_failure_costs_its_row_only_and_the_budget_stops_launching(ctx) -> None:
    cleaned: list[str] = []
    ran: list[str] = []

    def work(candidate: Candidate) -> CandidateResult:
        ran.append(candidate.name)
        if candidate.name == "c0":
            raise HealthCheckError("the engine never answered")
        return CandidateResult(name=candidate.name, cost_usd=candidate.cost_usd)

    outcome = run_candidates(candidates(ctx, [1.0, 2.0, 3.0]), work, cleanup=cleaned.append, parallel=1,
                             budget=4.0, reporter=NullReporter())
    assert ran == cleaned == ["c0", "c1"]
    assert outcome.results["c0"].error == "the engine never answered" and outcome.results["c1"].error is None
    assert "the budget of $4.00 would be exceeded ($2.00 spent or reserved, $3.00 more estimated)" in (
        outcome.not_launched["c2"])
    assert not outcome.interrupted


def _scenario(name: str, workdir: Path) -> dict:
    """Run a scenario of sweep_children.py in a fresh interpreter: no thread of this session is forked along."""
    done = subprocess.run([sys.executable, "-m", "tests.unit.sweep_children", name, str(workdir)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="candidates are forked on Linux only")
def test_candidates_run_side_by_side_in_children(tmp_path: Path) -> None:
    doc = _scenario("side_by_side", tmp_path)
    assert sorted(doc["cleaned"]) == ["c0", "c1", "c2"] and not doc["interrupted"]
    pids = {r["gpu"] for r in doc["results"].values()}
    assert len(pids) == 3 and str(doc["parent"]) not in pids, "each ran in a child of its own"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="candidates are forked on Linux only")
def test_an_interrupt_reaches_every_running_child_and_every_one_is_cleaned_up(tmp_path: Path) -> None:
    doc = _scenario("interrupted", tmp_path)
    assert doc["interrupted"]
    assert sorted(doc["cleaned"]) == ["c0", "c1"], "the sweep checks every launched candidate itself too"
    assert all(doc["results"][name]["interrupted"] for name in ("c0", "c1"))
    assert (tmp_path / "tore-down-c0").exists() and (tmp_path / "tore-down-c1").exists()
    assert doc["not_launched"] == {"c2": "interrupted before it was launched"}
