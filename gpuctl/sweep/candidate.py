"""One candidate of the sweep, as ``gpuctl up`` + ``gpuctl bench NAME`` + ``gpuctl down`` do it.

The deploy is the lifecycle's own (:func:`gpuctl.deploy.lifecycle.up`: the record before every
provider call, fallbacks on a capacity error, everything it made torn down when a step fails or is
interrupted); the bench is the load generator run from here through the deployment's endpoint (an SSH
tunnel for a private one), its runs stored with their conditions so later estimates learn from them;
the teardown is ``gpuctl down``'s (:func:`gpuctl.deploy.down.take_down`), run whatever the bench came
to, shielded from a second Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError, Interrupted, NotFoundError
from gpuctl.events import Reporter
from gpuctl.sweep.plan import Candidate, SweepPlan, SweepRequest
from gpuctl.sweep.results import CandidateResult

if TYPE_CHECKING:
    from gpuctl.models.bench import BenchRun
    from gpuctl.models.deployment import Deployment
    from gpuctl.weights.models import Manifest


@dataclass
class Prepared:
    """What every candidate's deploy needs, found before the one question: the engine's secrets, the model's files."""

    secrets: dict[str, str] = field(repr=False)
    manifest: Manifest | None


def prepare(ctx: DeployContext, plan: SweepPlan) -> Prepared:
    """The secrets and the file list of the sweep's model (the same for every candidate).

    Raises before anything is rented, as ``gpuctl up`` does: UsageError (2) for a gated model without
    a token or pickle-only weights, NotFoundError (3) for a missing repo.
    """
    from gpuctl.credentials import credential_value
    from gpuctl.deploy.proposal import required_secrets
    from gpuctl.weights.preflight import model_manifest

    first = plan.candidates[0].plan
    hf_token = credential_value("hf.token")
    secrets = required_secrets(first, hf_token)
    manifest = model_manifest(first.model.repo, first.model.revision, token=hf_token, allow_pickle=False,
                              reporter=ctx.reporter)
    return Prepared(secrets=secrets, manifest=manifest)


def run_candidate(ctx: DeployContext, prepared: Prepared, candidate: Candidate, request: SweepRequest,
                  reporter: Reporter) -> CandidateResult:
    """Deploy ``candidate``, bench it at each of its loads, take it down; what it came to.

    A failed or interrupted deploy has torn itself down; its error is the row's. Raises nothing for
    what one candidate can go through (GpuctlError, Ctrl-C): those are its row.
    """
    from gpuctl.deploy.lifecycle import UpRequest, up
    from gpuctl.deploy.signals import shielded

    ctx = dataclasses.replace(ctx, reporter=reporter)
    result = CandidateResult(name=candidate.name)
    try:
        deployment = up(ctx, UpRequest(name=candidate.name, plans=candidate.plans, secrets=dict(prepared.secrets),
                                       manifest=prepared.manifest))
    except GpuctlError as exc:  # the lifecycle tore down what it had made
        return _ended(ctx, result, error=exc.message, interrupted=isinstance(exc, Interrupted))
    except KeyboardInterrupt:
        return _ended(ctx, result, error="interrupted", interrupted=True)
    error: str | None = None
    interrupted = False
    try:  # at once: from here on, the deployment runs until the teardown below
        result = result.model_copy(update={
            "provider": deployment.provider, "offer": deployment.offer_id, "gpu": deployment.gpu,
            "gpu_count": deployment.gpu_count, "price_per_hour": deployment.price_per_hour})
        result = result.model_copy(update={"runs": bench_candidate(ctx, deployment, candidate, request)})
    except GpuctlError as exc:
        error = f"bench: {exc.message}"
    except KeyboardInterrupt:
        error, interrupted = "interrupted during the bench", True
    with shielded(reporter):
        try:
            take_down_candidate(ctx, candidate.name)
        except GpuctlError as exc:  # the sweep's final check tries once more, and says so if it fails too
            error = "; ".join(p for p in (error, f"teardown: {exc.message}") if p)
    return _ended(ctx, result, error=error, interrupted=interrupted)


def bench_candidate(ctx: DeployContext, deployment: Deployment, candidate: Candidate,
                    request: SweepRequest) -> list[BenchRun]:
    """The candidate's bench runs (one per load), stored in the project's history as ``gpuctl bench NAME``
    stores them. Raises the load generator's error, or HealthCheckError when no request succeeded."""
    from gpuctl.bench.runner import (
        BenchTarget,
        bench_runs,
        failure_error,
        make_spec,
        run_local,
        store_results,
    )
    from gpuctl.deploy.access import endpoint_from_here
    from gpuctl.deploy.secrets import read_api_key

    assert deployment.endpoint is not None
    slo = request.load.slo
    slo_ms = {} if slo is None else {k: v for k, v in (("ttft", slo.ttft_ms), ("tpot", slo.itl_ms)) if v is not None}
    target = BenchTarget(url=deployment.endpoint, api_key=read_api_key(ctx.state_dir, deployment.name),
                         price_per_hour=deployment.price_per_hour, deployment=deployment)
    spec = make_spec(target, concurrency=list(candidate.concurrency), rate=[None], requests=candidate.requests,
                     input_len=request.load.input_tokens, output_len=request.load.output_tokens, slo_ms=slo_ms,
                     progress=False)
    loads = ",".join(map(str, candidate.concurrency))
    with endpoint_from_here(ctx, deployment) as base, \
            ctx.reporter.step(f"benchmarking at concurrency {loads}, {candidate.requests} requests each"):
        report = run_local(dataclasses.replace(spec, url=base), ctx.reporter)
    runs = bench_runs(report, target.price_per_hour)
    if any(run.requests_ok for run in runs):
        store_results(ctx.store, target, spec, report, runs)
        return runs
    failed = failure_error(report, 0.0, deployment.endpoint)
    raise failed or GpuctlError("the bench measured nothing")


def take_down_candidate(ctx: DeployContext, name: str) -> None:
    """``gpuctl down NAME`` for a candidate: nothing to do when it was never recorded or is down already."""
    from gpuctl.deploy.down import take_down
    from gpuctl.deploy.records import is_active

    try:
        record = ctx.records.get(name)
    except NotFoundError:
        return
    if is_active(record):
        take_down(ctx, name)


def _ended(ctx: DeployContext, result: CandidateResult, *, error: str | None, interrupted: bool) -> CandidateResult:
    """``result`` with how it ended and what it cost (from its record, once torn down)."""
    cost = None
    with contextlib.suppress(GpuctlError):
        cost = ctx.records.get(result.name).cost_usd
    return result.model_copy(update={"error": error, "interrupted": interrupted, "cost_usd": cost})
