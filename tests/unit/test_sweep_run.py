"""Running a sweep's candidates: side by side in forked children, within the budget, cleaned up on interrupt."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gpuctl.concurrency import can_fork
from gpuctl.errors import HealthCheckError
from gpuctl.events import NullReporter
from gpuctl.sweep.plan import Candidate
from gpuctl.sweep.results import CandidateResult
from gpuctl.sweep.run import run_candidates
from tests.unit.test_sweep_plan import plan

WAIT_S = 20.0


def candidates(ctx, costs: list[float]) -> list[Candidate]:
    sweep = plan(ctx)
    return [c.model_copy(update={"cost_usd": cost, "name": f"c{i}"})
            for i, (c, cost) in enumerate(zip(sweep.candidates, costs, strict=False))]


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


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


@pytest.mark.skipif(not can_fork(), reason="forking needs Linux and a single thread")
def test_candidates_run_side_by_side_in_children(ctx, tmp_path: Path) -> None:
    cleaned: list[str] = []

    def work(candidate: Candidate) -> CandidateResult:
        (tmp_path / f"started-{candidate.name}").touch()
        other = "c1" if candidate.name == "c0" else "c0"
        wait_for(tmp_path / f"started-{other}")  # each waits for the other: they run at the same time
        return CandidateResult(name=candidate.name, cost_usd=candidate.cost_usd, gpu=str(os.getpid()))

    outcome = run_candidates(candidates(ctx, [1.0, 1.0]), work, cleanup=cleaned.append, parallel=2, budget=None,
                             reporter=NullReporter())
    assert sorted(cleaned) == ["c0", "c1"] and not outcome.interrupted
    pids = {r.gpu for r in outcome.results.values()}
    assert len(pids) == 2 and str(os.getpid()) not in pids, "each ran in a child of its own"


@pytest.mark.skipif(not can_fork(), reason="forking needs Linux and a single thread")
def test_an_interrupt_reaches_every_running_child_and_every_one_is_cleaned_up(ctx, tmp_path: Path) -> None:
    cleaned: list[str] = []

    def work(candidate: Candidate) -> CandidateResult:
        (tmp_path / f"started-{candidate.name}").touch()
        try:
            if candidate.name == "c0":
                wait_for(tmp_path / "started-c1")
                os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C on the sweep, once both run
            wait_for(tmp_path / "never")
        except KeyboardInterrupt:
            (tmp_path / f"tore-down-{candidate.name}").touch()
            raise
        return CandidateResult(name=candidate.name)

    outcome = run_candidates(candidates(ctx, [1.0, 1.0, 1.0]), work, cleanup=cleaned.append, parallel=2,
                             budget=None, reporter=NullReporter())
    assert outcome.interrupted
    assert sorted(cleaned) == ["c0", "c1"], "the sweep checks every launched candidate itself too"
    assert all(outcome.results[name].interrupted for name in ("c0", "c1"))
    assert (tmp_path / "tore-down-c0").exists() and (tmp_path / "tore-down-c1").exists()
    assert outcome.not_launched == {"c2": "interrupted before it was launched"}
