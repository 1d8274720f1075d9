"""Running a benchmark: what to measure, running the load generator, and turning its report into results.

The load generator (loadgen.py next to this file) always runs as its own process and answers with
JSON, whether it runs here or on a GPU host; its settings, the API key included, go in on stdin so
no secret ever appears in a command line.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gpuctl.bench.cost import cost_per_million
from gpuctl.envvars import Env
from gpuctl.errors import (
    CredentialsError,
    GpuctlError,
    HealthCheckError,
    NotFoundError,
    ProviderError,
    UsageError,
)
from gpuctl.events import NullReporter, Reporter
from gpuctl.models.bench import BenchRecord, BenchRun, LoadgenReport, LoadgenRun

if TYPE_CHECKING:
    from gpuctl.bench.loadgen import LoadSpec
    from gpuctl.models.deployment import Deployment
    from gpuctl.perf.history import Conditions
    from gpuctl.state import State, StateStore

LOADGEN_PATH = Path(__file__).with_name("loadgen.py")
MAX_STORED_RUNS = 500  # oldest bench records are dropped beyond this, so the state file stays small
SMOKE_REQUESTS = 3
SMOKE_TOKENS = 32


@dataclass(frozen=True)
class BenchTarget:
    """An endpoint to measure, and what is known about what it costs."""

    url: str
    model: str | None = None
    api_key: str | None = None
    price_per_hour: float | None = None
    deployment: Deployment | None = None


def target_for_deployment(state: State, name: str, *, model: str | None, api_key: str | None,
                          price_per_hour: float | None) -> BenchTarget:
    """The endpoint and price of deployment ``name`` from the state file."""
    deployment = state.deployments.get(name)
    if deployment is None:
        known = ", ".join(sorted(state.deployments)) or "none"
        raise NotFoundError(f"no deployment named '{name}' (known: {known})",
                            "check the name, or measure any server with --url")
    if not deployment.endpoint:
        raise UsageError(f"deployment '{name}' has no endpoint yet (status: {deployment.status})",
                         "wait until 'gpuctl up' reports it running")
    price = price_per_hour if price_per_hour is not None else deployment.price_per_hour
    return BenchTarget(url=deployment.endpoint, model=model, api_key=api_key,
                       price_per_hour=price, deployment=deployment)


def make_spec(target: BenchTarget, **load: Any) -> LoadSpec:
    """Validated load generator settings; a bad combination is a usage error (exit 2)."""
    from gpuctl.bench.loadgen import LoadSpec

    try:
        return LoadSpec.from_dict({"url": target.url, "model": target.model, "api_key": target.api_key, **load})
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_local(spec: LoadSpec, reporter: Reporter) -> LoadgenReport:
    """Run the load generator as a child process here; its progress lines go to ``reporter``."""
    command = [sys.executable, str(LOADGEN_PATH), "--config", "-", "--json"]
    if not spec.progress:
        command.append("--quiet")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    tail: deque[str] = deque(maxlen=5)
    relay = threading.Thread(target=_relay, args=(process.stderr, reporter, tail), daemon=True)
    relay.start()
    try:
        assert process.stdin is not None and process.stdout is not None
        with process.stdin:
            process.stdin.write(json.dumps(asdict(spec)))
        stdout = process.stdout.read()
        process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        relay.join(timeout=5)
    if process.returncode != 0:
        raise loadgen_error(process.returncode, list(tail), spec.url)
    return parse_report(stdout)


def _relay(stream: Any, reporter: Reporter, tail: deque[str]) -> None:
    for line in stream:
        line = line.rstrip()
        if line:
            tail.append(line)
            if not line.startswith("loadgen: "):
                reporter.info(line)


def loadgen_error(code: int, tail: list[str], url: str) -> GpuctlError:
    """The gpuctl error for a load generator that exited with ``code`` (its last stderr lines in ``tail``;
    the exit codes are listed in loadgen.py's docstring)."""
    message = next((line.removeprefix("loadgen: ") for line in reversed(tail) if line.startswith("loadgen: ")),
                   tail[-1] if tail else f"the load generator exited with status {code}")
    models = f"{url.rstrip('/').removesuffix('/v1')}/v1/models"
    if code == 2:
        return UsageError(message, "check the file and the options")
    if code == 3:
        return HealthCheckError(message, f"check that the server answers: curl {models}")
    if code == 4:
        return ProviderError(message, f"is this an OpenAI-compatible server? curl {models} should list its model")
    if code == 6:
        return CredentialsError(message, f"pass the server's key with --api-key or ${Env.OPENAI_API_KEY}")
    return GpuctlError(f"the load generator failed (exit {code}): {message}")


def failure_error(report: LoadgenReport, allowed: float, url: str) -> GpuctlError | None:
    """The error a run ends with when more than ``allowed`` (a fraction) of some point's requests failed:
    exit 4 when the server answered something that is not an OpenAI stream, else 8; None when all is well."""
    over = [(i, run) for i, run in enumerate(report.runs, 1)
            if run.requests_failed > allowed * (run.requests_ok + run.requests_failed)]
    if not over:
        return None
    causes: dict[str, int] = {}
    for _, run in over:
        for cause, count in run.errors.items():
            causes[cause] = causes.get(cause, 0) + count
    listed = ", ".join(f"{cause} x{count}" for cause, count in sorted(causes.items()))
    if not any(run.requests_ok for run in report.runs):
        message = f"no request to {url} succeeded ({listed})"
    else:
        points = "; ".join(f"run {i} ({_point(run)}): {run.requests_failed} of "
                           f"{run.requests_ok + run.requests_failed} failed" for i, run in over)
        message = f"requests to {url} failed: {points} ({listed})"
    if "invalid response" in causes:
        return ProviderError(message + ": the server's answers are not OpenAI-style event streams",
                             "check that the URL is an OpenAI-compatible server (the warnings above show what "
                             "it sent)")
    if set(causes) <= {"http 401", "http 403"}:
        return CredentialsError(message + ": the server refused the API key",
                                f"pass the server's key with --api-key or ${Env.OPENAI_API_KEY}")
    worst = max(run.requests_failed / (run.requests_ok + run.requests_failed) for _, run in over)
    if worst == 1:
        return HealthCheckError(message, "the warnings above give the causes")
    return HealthCheckError(message, f"the warnings above give the causes; --allow-failures "
                                     f"{math.ceil(worst * 100) / 100:g} accepts this many")


def _point(run: LoadgenRun) -> str:
    return " ".join(p for p in (run.concurrency and f"c={run.concurrency}", run.rate and f"{run.rate:g} req/s")
                    if p) or "unlimited"



def parse_report(stdout: str) -> LoadgenReport:
    """The load generator's JSON document, validated."""
    try:
        return LoadgenReport.model_validate_json(stdout.strip().splitlines()[-1] if stdout.strip() else "")
    except ValidationError as exc:
        raise GpuctlError(f"the load generator printed an unexpected result ({exc.error_count()} problems)",
                          "rerun with GPUCTL_DEBUG=1 and report it") from exc


def bench_runs(report: LoadgenReport, price_per_hour: float | None) -> list[BenchRun]:
    """The public view of every run of a report."""
    return [bench_run(run, price_per_hour, report.settings) for run in report.runs]


def bench_run(run: LoadgenRun, price_per_hour: float | None, settings: dict[str, Any] | None = None) -> BenchRun:
    """The public view of one run, with its cost per million tokens (``settings``: the report's, which
    carry the seed and salt)."""
    settings = settings or {}
    return BenchRun(
        concurrency=run.concurrency, rate=run.rate, requests_ok=run.requests_ok,
        requests_failed=run.requests_failed, failed_by_cause=run.errors, truncated_responses=run.truncated_responses,
        short_responses=run.short_responses, retried_requests=run.retried, input_tokens=run.input_tokens,
        output_tokens=run.output_tokens, output_tokens_requested=run.output_tokens_requested,
        input_tokens_source=run.input_tokens_source, output_tokens_source=run.output_tokens_source,
        cached_input_tokens=run.cached_input_tokens, seed=settings.get("seed"), salt=settings.get("salt"),
        prefix_share=settings.get("prefix_share") or 0.0,
        duration_s=run.duration_s, ttft_ms=run.ttft_ms, itl_ms=run.itl_ms,
        tpot_ms=run.tpot_ms, e2e_ms=run.e2e_ms, output_tokens_per_s=run.output_tokens_per_s,
        total_tokens_per_s=run.total_tokens_per_s, requests_per_s=run.requests_per_s,
        cost_per_1m_output_tokens=cost_per_million(price_per_hour, run.output_tokens_per_s),
        cost_per_1m_total_tokens=cost_per_million(price_per_hour, run.total_tokens_per_s),
        goodput_requests_per_s=run.goodput_requests_per_s, client_saturated=run.client.saturated,
        client_sent_late=run.client.sent_late,
    )


def store_results(store: StateStore, target: BenchTarget, spec: LoadSpec, report: LoadgenReport,
                  runs: list[BenchRun]) -> list[BenchRecord]:
    """Keep the runs of a deployment bench in the state file (newest last, at most MAX_STORED_RUNS)."""
    deployment = target.deployment
    if deployment is None:
        return []
    records = [
        BenchRecord(deployment=deployment.name, model=report.model, provider=deployment.provider,
                    gpu=deployment.gpu, gpu_count=deployment.gpu_count, price_per_hour=target.price_per_hour,
                    endpoint="chat" if spec.endpoint == "chat" else "completions", input_len=spec.input_len,
                    output_len=spec.output_len,
                    dataset="random" if spec.dataset == "random" else Path(spec.dataset).name,
                    errors=loadgen_run.errors, run=run)
        for loadgen_run, run in zip(report.runs, runs, strict=True)
    ]
    conditions = bench_conditions(deployment, store.dir.parent)
    if conditions is not None:  # what later estimates learn from (gpuctl.perf.history)
        records = [conditions.apply(record, random_prompts=spec.dataset == "random") for record in records]
    with store.transaction() as state:
        state.bench_runs.extend(records)
        del state.bench_runs[:-MAX_STORED_RUNS]
    return records


def bench_conditions(deployment: Deployment, project_root: Path) -> Conditions | None:
    """What ``deployment`` serves how, for its bench records; None when that is not known (an ad-hoc hf: model
    is not looked up again, an old record names no engine)."""
    from gpuctl.perf.history import Conditions
    from gpuctl.recipes import is_hf_ref, resolve_model

    if not (deployment.engine and deployment.gpu and deployment.gpu_count) or is_hf_ref(deployment.model):
        return None
    try:
        recipe = resolve_model(deployment.model, project_root)
    except GpuctlError:  # the recipe is gone or broken since: the run is still kept, without conditions
        return None
    return Conditions(recipe, gpu=deployment.gpu, gpu_count=deployment.gpu_count, engine=deployment.engine,
                      quantization=deployment.quantization)


def smoke_bench(url: str, *, model: str | None = None, api_key: str | None = None,
                price_per_hour: float | None = None, reporter: Reporter | None = None) -> BenchRun:
    """A few sequential requests, for ``gpuctl up`` to show first figures (TTFT, tokens/s) of a new endpoint."""
    target = BenchTarget(url=url, model=model, api_key=api_key, price_per_hour=price_per_hour)
    spec = make_spec(target, requests=SMOKE_REQUESTS, warmup=1, input_len=SMOKE_TOKENS,
                     output_len=SMOKE_TOKENS, timeout_s=120.0, progress=False)
    report = run_local(spec, reporter or NullReporter())
    return bench_runs(report, price_per_hour)[0]
