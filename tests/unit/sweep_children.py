"""Sweep scenarios run in a fresh interpreter (``python -m tests.unit.sweep_children SCENARIO DIR``), so that
forking is safe whatever threads the test session has left behind; prints the outcome as JSON."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from gpuctl.events import NullReporter
from gpuctl.models.offer import Offer
from gpuctl.perf.offers import Serving
from gpuctl.plan import PlanInputs
from gpuctl.recipes import resolve_model
from gpuctl.sweep.plan import Candidate, SweepRequest, plan_sweep
from gpuctl.sweep.results import CandidateResult
from gpuctl.sweep.run import run_candidates

WAIT_S = 20.0


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


def candidates(workdir: Path, count: int) -> list[Candidate]:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.state import StateStore
    from tests.fakehost.cloud import make_offer, registry

    offers: list[Offer] = [make_offer("fakecloud", f"l40s-{i}", 1.0, "L40S") for i in range(count)]
    ctx = DeployContext(store=StateStore(workdir), registry=registry())
    recipe = resolve_model("llama-3.1-8b")
    sweep = plan_sweep(ctx, SweepRequest(model=recipe.name, gpus=["L40S"], load=Serving()),
                       PlanInputs(recipe=recipe, offers=offers, hf_token_present=True))
    return [sweep.candidates[0].model_copy(update={"name": f"c{i}", "cost_usd": 1.0}) for i in range(count)]


def side_by_side(workdir: Path, candidate: Candidate) -> CandidateResult:
    (workdir / f"started-{candidate.name}").touch()
    wait_for(workdir / f"started-{'c1' if candidate.name == 'c0' else 'c0'}")  # each waits for the other
    return CandidateResult(name=candidate.name, gpu=str(os.getpid()))


def interrupted(workdir: Path, candidate: Candidate) -> CandidateResult:
    try:  # from the start: the interrupt may come as soon as this child says it started
        (workdir / f"started-{candidate.name}").touch()
        if candidate.name == "c0":
            wait_for(workdir / "started-c1")
            os.kill(os.getppid(), signal.SIGINT)  # Ctrl-C on the sweep, once both run
        wait_for(workdir / "never")
    except KeyboardInterrupt:
        (workdir / f"tore-down-{candidate.name}").touch()
        raise
    return CandidateResult(name=candidate.name)


def main(scenario: str, workdir: Path) -> None:
    work = {"side_by_side": side_by_side, "interrupted": interrupted}[scenario]
    cleaned: list[str] = []
    outcome = run_candidates(candidates(workdir, 3), lambda c: work(workdir, c), cleanup=cleaned.append,
                             parallel=2, budget=None, reporter=NullReporter())
    print(json.dumps({"parent": os.getpid(), "cleaned": cleaned, "interrupted": outcome.interrupted,
                      "not_launched": outcome.not_launched,
                      "results": {k: v.model_dump(mode="json") for k, v in outcome.results.items()}}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
