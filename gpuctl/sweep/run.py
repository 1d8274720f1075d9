"""Running the sweep's candidates: side by side (bounded), within the budget, all torn down whatever happens.

Each candidate runs in a forked copy of this process (``gpuctl.concurrency.ChildCall``), which does
what ``gpuctl up`` + ``gpuctl bench`` + ``gpuctl down`` do, with their guarantees: a deploy that fails
or is interrupted tears down what it made, and the bench is always followed by the teardown. A child
is its own process, so Ctrl-C reaches it as it reaches ``gpuctl up`` (the terminal interrupts the
whole process group; SIGTERM to this process is passed on), and one candidate's failure costs only
its own row. When forking is not safe here (another thread runs, not Linux) the candidates run one
after the other in this process instead.

The budget: before each launch, what finished candidates cost plus what running ones are estimated
to cost, plus this one's estimate, must stay within it; the first that would exceed it, and every
later one, is not launched. A candidate's TTL caps what it can cost if everything else fails.

Whatever happened, every candidate that was launched is finally checked with ``cleanup`` (``gpuctl
down``'s teardown, which finds nothing to do for one already down), so no instance is left.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from gpuctl.concurrency import ChildCall, can_fork
from gpuctl.errors import GpuctlError
from gpuctl.events import Reporter
from gpuctl.sweep.plan import Candidate
from gpuctl.sweep.results import CandidateResult

#: seconds between two checks of running children (an interrupt is noticed at once regardless)
POLL_S = 1.0


@dataclass
class SweepOutcome:
    """What each candidate came to; ``not_launched`` the names the budget (or an interrupt) kept back."""

    results: dict[str, CandidateResult] = field(default_factory=dict)
    not_launched: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    cleanup_failures: list[str] = field(default_factory=list)


def within_budget(candidate: Candidate, committed: float, budget: float | None) -> bool:
    """Whether launching ``candidate`` keeps ``committed`` (spent and reserved, USD) within ``budget``."""
    return budget is None or committed + candidate.cost_usd <= budget + 1e-9


def run_candidates(candidates: Sequence[Candidate], work: Callable[[Candidate], CandidateResult], *,
                   cleanup: Callable[[str], None], parallel: int, budget: float | None,
                   reporter: Reporter) -> SweepOutcome:
    """Run ``work`` for each candidate (at most ``parallel`` at once, never past ``budget``), then ``cleanup``
    every launched one. An interrupt (Ctrl-C, SIGTERM) stops launching, lets the running ones tear down,
    and returns with ``interrupted`` set."""
    from gpuctl.deploy.signals import shielded, terminate_interrupts

    outcome = SweepOutcome()
    launched: list[str] = []
    try:
        with terminate_interrupts():
            if parallel > 1 and len(candidates) > 1 and can_fork():
                reporter.info(f"{len(candidates)} candidates, {min(parallel, len(candidates))} at a time, "
                              "each in a process of its own")
                _forked(candidates, work, parallel, budget, reporter, outcome, launched)
            else:
                reporter.info(f"{len(candidates)} candidate(s), one after the other")
                _in_turn(candidates, work, budget, reporter, outcome, launched)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        with shielded(reporter):
            for name in launched:
                try:
                    cleanup(name)
                except GpuctlError as exc:
                    outcome.cleanup_failures.append(f"{name}: {exc.one_line()}")
    for candidate in candidates:
        if candidate.name not in outcome.results and candidate.name not in outcome.not_launched:
            outcome.not_launched[candidate.name] = "interrupted before it was launched"
    return outcome


def _committed(outcome: SweepOutcome, running: Sequence[Candidate]) -> float:
    spent = sum(r.cost_usd or 0.0 for r in outcome.results.values())
    return spent + sum(c.cost_usd for c in running)


def _stop_launching(candidate: Candidate, committed: float, budget: float | None, outcome: SweepOutcome,
                    rest: Sequence[Candidate], reporter: Reporter) -> bool:
    if within_budget(candidate, committed, budget):
        return False
    why = (f"the budget of ${budget:.2f} would be exceeded (${committed:.2f} spent or reserved, "
           f"${candidate.cost_usd:.2f} more estimated)")
    reporter.warn(f"not launching {', '.join(c.label for c in rest)}: {why}")
    for later in rest:
        outcome.not_launched[later.name] = why
    return True


def _in_turn(candidates: Sequence[Candidate], work: Callable[[Candidate], CandidateResult],
             budget: float | None, reporter: Reporter, outcome: SweepOutcome, launched: list[str]) -> None:
    for i, candidate in enumerate(candidates):
        if _stop_launching(candidate, _committed(outcome, []), budget, outcome, candidates[i:], reporter):
            return
        launched.append(candidate.name)
        result = outcome.results[candidate.name] = _safely(work, candidate)
        if result.interrupted:
            raise KeyboardInterrupt


def _safely(work: Callable[[Candidate], CandidateResult], candidate: Candidate) -> CandidateResult:
    """``work``'s result; its failure, or its interruption once it has torn down, becomes the candidate's row."""
    try:
        return work(candidate)
    except GpuctlError as exc:
        return CandidateResult(name=candidate.name, error=exc.message, interrupted=exc.exit_code == 130)
    except KeyboardInterrupt:
        return CandidateResult(name=candidate.name, error="interrupted", interrupted=True)


def _forked(candidates: Sequence[Candidate], work: Callable[[Candidate], CandidateResult], parallel: int,
            budget: float | None, reporter: Reporter, outcome: SweepOutcome, launched: list[str]) -> None:
    waiting = list(candidates)
    running: dict[int, tuple[Candidate, ChildCall[CandidateResult]]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                candidate = waiting[0]
                if _stop_launching(candidate, _committed(outcome, [c for c, _ in running.values()]), budget,
                                   outcome, waiting, reporter):
                    waiting.clear()
                    break
                waiting.pop(0)
                launched.append(candidate.name)
                child: ChildCall[CandidateResult] = ChildCall(lambda c=candidate: _safely(work, c))  # type: ignore[misc]
                running[child.fileno()] = (candidate, child)
            if not running:
                break
            ready, _, _ = select.select(list(running), [], [], POLL_S)
            for fd in ready:
                candidate, child = running.pop(fd)
                outcome.results[candidate.name] = _result(candidate, child)
    except KeyboardInterrupt:
        # the children were interrupted too (the terminal's process group) or are told so now: each tears
        # down what it made; wait for every one of them before the final check
        with _ignoring_interrupts():
            for _, child in running.values():
                _interrupt(child.pid)
            for candidate, child in running.values():
                outcome.results[candidate.name] = _result(candidate, child)
        raise


def _result(candidate: Candidate, child: ChildCall[CandidateResult]) -> CandidateResult:
    try:
        return child.result()
    except Exception as exc:  # the child died or sent no answer: its row says so
        return CandidateResult(name=candidate.name, error=f"{type(exc).__name__}: {exc}")


def _interrupt(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has ended already
        os.kill(pid, signal.SIGINT)


@contextlib.contextmanager
def _ignoring_interrupts() -> Iterator[None]:
    """Further Ctrl-C while the children clean up only waits longer (they are shielded themselves)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
