"""``gpuctl bench``: latency, throughput and cost per 1M tokens of a deployment or any OpenAI-compatible URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, get_args

import click
from pydantic import BaseModel

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option, yes_option
from gpuctl.cli.output import Column, ConsoleReporter, info, print_json, print_rows, warn
from gpuctl.durations import parse_duration
from gpuctl.envvars import Env
from gpuctl.errors import UsageError
from gpuctl.models.recipe import EngineName, QuantMethod

if TYPE_CHECKING:
    from gpuctl.bench.loadgen import LoadSpec
    from gpuctl.bench.runner import BenchTarget
    from gpuctl.models.bench import LoadgenReport



class _Parsed(click.ParamType):
    """A value parsed by one of the load generator's own parsers (comma lists, SLOs)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _loadgen_parser(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        from gpuctl.bench import loadgen

        return getattr(loadgen, name)(text)

    return parse


def _parse_slo(text: str) -> dict[str, float]:
    """The load generator's SLO keys, with ``itl`` (as ``prices --slo`` has it) meaning ``tpot``."""
    from gpuctl.bench import loadgen

    return loadgen.parse_slo(re.sub(r"\bitl(?=\s*=)", "tpot", text, flags=re.IGNORECASE))


def _ms(stats: Any, key: str) -> str | None:
    return None if stats is None else f"{getattr(stats, key):.1f}"


def _money(value: float | None) -> str | None:
    return None if value is None else f"{value:.3g}"


class _Line(BaseModel):
    """One line of the summary: a figure, and its value in each run (runs are columns)."""

    figure: str
    values: list[str | None]


def _summary(runs: list[Any], with_goodput: bool) -> tuple[list[_Line], list[Column]]:
    def line(figure: str, value: Callable[[Any], Any]) -> _Line:
        return _Line(figure=figure, values=[None if (v := value(r)) is None else str(v) for r in runs])

    lines = [
        line("requests ok / failed", lambda r: f"{r.requests_ok} / {r.requests_failed}"),
        line("duration s", lambda r: f"{r.duration_s:.2f}"),
        line("requests/s", lambda r: f"{r.requests_per_s:.2f}"),
        line("output tokens/s", lambda r: f"{r.output_tokens_per_s:.1f}"),
        line("total tokens/s", lambda r: f"{r.total_tokens_per_s:.1f}"),
    ]
    if with_goodput:
        lines.append(line("goodput requests/s", lambda r: f"{r.goodput_requests_per_s:.2f}"))
    for metric, label in (("ttft_ms", "TTFT"), ("itl_ms", "ITL (per token)"), ("tpot_ms", "TPOT"),
                          ("e2e_ms", "E2E latency")):
        for key in ("mean", "p50", "p90", "p99"):
            lines.append(line(f"{label} {key} ms", partial(_stat, metric, key)))
    lines += [
        line("$ per 1M output tokens", lambda r: _money(r.cost_per_1m_output_tokens)),
        line("$ per 1M total tokens", lambda r: _money(r.cost_per_1m_total_tokens)),
        line("client saturated", lambda r: "yes" if r.client_saturated else "no"),
    ]
    def header(r: Any) -> str:
        return " ".join(p for p in (r.concurrency and f"c={r.concurrency}", r.rate and f"{r.rate:g} req/s") if p)

    columns = [Column("", "figure")] + [
        Column(header(r) or "run", partial(_value, i), "right") for i, r in enumerate(runs)]
    return lines, columns


def _stat(metric: str, key: str, run: Any) -> str | None:
    return _ms(getattr(run, metric), key)


def _value(index: int, line: _Line) -> str | None:
    return line.values[index]


_HISTORY_COLUMNS = [
    Column("NAME", "deployment"),
    Column("GPU", lambda h: f"{h.gpu_count}x{h.gpu}" if h.gpu and (h.gpu_count or 1) > 1 else h.gpu),
    Column("PROVIDER", "provider"),
    Column("LOAD", lambda h: " ".join(part for part in (
        h.run.concurrency and f"c={h.run.concurrency}", h.run.rate and f"{h.run.rate:g}/s",
        f"{h.input_len}/{h.output_len}") if part)),
    Column("TOK/S", lambda h: f"{h.run.output_tokens_per_s:.0f}", "right"),
    Column("TTFT MS", lambda h: _ms(h.run.ttft_ms, "p50"), "right"),
    Column("$/HR", lambda h: _money(h.price_per_hour), "right"),
    Column("$/1M OUT", lambda h: _money(h.run.cost_per_1m_output_tokens), "right"),
    Column("$/1M ALL", lambda h: _money(h.run.cost_per_1m_total_tokens), "right"),
]


@click.command(short_help="Latency, throughput and $ per 1M tokens of an endpoint.")
@click.argument("name", required=False)
@click.option("--url", metavar="BASE_URL", help="Any OpenAI-compatible server instead of a deployment.")
@click.option("--model", help="Model name to request (default: the first one the server lists).")
@click.option("--api-key", envvar=Env.OPENAI_API_KEY, show_envvar=True, metavar="KEY", help="Bearer token.")
@click.option("-c", "--concurrency", type=_Parsed("list", _loadgen_parser("parse_concurrency_list")),
              default=None, metavar="N[,N...]", help="Requests in flight; a comma list sweeps. [default: 1]")
@click.option("--rate", type=_Parsed("list", _loadgen_parser("parse_rate_list")), default=None,
              metavar="R[,R...]", help="Requests per second, Poisson arrivals; a comma list sweeps.")
@click.option("--burstiness", type=float, default=1.0, show_default=True,
              help="Shape of the gaps between arrivals: 1 is Poisson, below 1 burstier, above smoother.")
@click.option("-n", "--requests", type=click.IntRange(min=1), help="Measured requests per run. [default: 100]")
@click.option("--duration", metavar="DURATION", help="Measure for this long instead (30s, 5m).")
@click.option("--warmup", type=click.IntRange(min=0), help="Unmeasured requests first. [default: one per slot]")
@click.option("--input-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="Prompt length in tokens (random dataset).")
@click.option("--output-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="Tokens to generate per request.")
@click.option("--ignore-eos/--no-ignore-eos", default=True, show_default=True,
              help="Ask the server to generate exactly --output-len tokens (vLLM honours it).")
@click.option("--dataset", default="random", show_default=True, metavar="random|PATH",
              help="Random prompts, or a JSONL file of {\"prompt\": ...} or {\"messages\": [...]} lines.")
@click.option("--endpoint", type=click.Choice(["completions", "chat"]), default="completions", show_default=True)
@click.option("--seed", type=click.IntRange(min=0),
              help="Send exactly the prompts of the run with this seed (--json and --history show each run's). "
                   "[default: new prompts every run, so no server cache answers them]")
@click.option("--prefix-share", type=click.FloatRange(0, 1), default=0.0, metavar="R",
              help="Fraction of each prompt that every request of a run shares, like a system prompt (random "
                   "prompts). [default: 0]")
@click.option("--allow-failures", type=click.FloatRange(0, 1), default=0.0, metavar="FRACTION",
              help="Exit 0 while at most this fraction of a run's requests failed. [default: 0, any failure "
                   "exits 8]")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Per-request timeout, seconds.")
@click.option("--slo", type=_Parsed("slo", _parse_slo), metavar="ttft=MS,tpot=MS",
              help="Service levels for goodput (keys ttft, tpot or itl, e2e); with --sweep, the medians a "
                   "candidate must meet.")
@click.option("--price-per-hour", type=click.FloatRange(min=0), metavar="USD",
              help="Price of the endpoint (default: the deployment's).")
@click.option("--from", "source", type=click.Choice(["local", "host"]), default="local", show_default=True,
              help="Where the load generator runs: here, or on the deployment's GPU host against localhost.")
@click.option("--history", is_flag=True, help="List stored deployment benches instead of running one.")
@click.option("--sweep", is_flag=True,
              help="Rent the offer of each --gpu that is cheapest per token by estimate, bench it, tear it down, "
                   "and rank them by measured $ per 1M output tokens (needs --for and --gpu).")
@click.option("--for", "sweep_model", metavar="MODEL", help="With --sweep: the model to serve (recipe or hf:ORG/NAME).")
@click.option("--gpu", "sweep_gpus", multiple=True, metavar="GPU[,GPU...]",
              help="With --sweep: the GPUs (or families) to compare, one candidate each.")
@click.option("--provider", "sweep_providers", multiple=True, metavar="NAME",
              help="With --sweep: rent from these providers only.")
@click.option("--count", "sweep_count", type=click.IntRange(min=1), metavar="N",
              help="With --sweep: GPUs per instance [default: the offers that fit].")
@click.option("--engine", "sweep_engine", type=click.Choice(get_args(EngineName)), default=None,
              help="With --sweep: the engine to deploy (default: vllm, or the project's).")
@click.option("--quantization", "sweep_quantization", type=click.Choice(get_args(QuantMethod)), default=None,
              help="With --sweep: serve quantized, as 'gpuctl up --quantization'.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="With --sweep: launch no candidate that would take the sweep's estimated cost above USD.")
@click.option("--parallel", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
              help="With --sweep: candidates deployed at once.")
@click.option("--dry-run", is_flag=True, help="With --sweep: print the sweep's plan and rent nothing.")
@yes_option
@json_option
@quiet_option
@click.pass_obj
def bench(app: App, name: str | None, url: str | None, model: str | None, api_key: str | None,
          concurrency: list[int | None] | None, rate: list[float | None] | None, burstiness: float,
          requests: int | None, duration: str | None, warmup: int | None, input_len: int, output_len: int,
          ignore_eos: bool, dataset: str, endpoint: str, seed: int | None, prefix_share: float,
          allow_failures: float, timeout: float, slo: dict[str, float] | None, price_per_hour: float | None,
          source: str, history: bool, sweep: bool, sweep_model: str | None, sweep_gpus: tuple[str, ...],
          sweep_providers: tuple[str, ...], sweep_count: int | None, sweep_engine: str | None,
          sweep_quantization: str | None, budget: float | None, parallel: int, dry_run: bool) -> None:
    """Measure TTFT, inter-token latency, TPOT, end-to-end latency, throughput, goodput and the cost per
    1M tokens of deployment NAME, or of any OpenAI-compatible server given by --url.

    \b
    Examples:
      gpuctl bench my-llama -c 1,8,32,128
      gpuctl bench --url http://10.0.0.5:8000 --rate 5 --duration 2m --slo ttft=500,tpot=50
      gpuctl bench --history
      gpuctl bench --sweep --for llama-3.1-8b --gpu l40s,a100,h100 --slo itl=50 --budget 5

    Every run sends prompts no server has seen (a server's prefix cache would make TTFT read low);
    --seed repeats a run's prompts. A run in which requests failed exits 8 (4 when the server's answers
    are not OpenAI event streams) after printing its figures; see docs/bench.md.
    """
    sweep_only = {"--for": sweep_model, "--gpu": sweep_gpus, "--provider": sweep_providers, "--count": sweep_count,
                  "--engine": sweep_engine, "--quantization": sweep_quantization, "--budget": budget,
                  "--dry-run": dry_run}
    if sweep:
        _sweep(app, name, url, rate, duration, concurrency, requests, input_len, output_len, slo, sweep_model,
               sweep_gpus, sweep_providers, sweep_count, sweep_engine, sweep_quantization, budget, parallel, dry_run)
        return
    given = [flag for flag, value in sweep_only.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)} only apply with --sweep", "add --sweep, or drop them")
    if history:
        _show_history(app, name)
        return
    from gpuctl.bench.runner import (
        BenchTarget,
        bench_runs,
        failure_error,
        make_spec,
        store_results,
        target_for_deployment,
    )

    if bool(name) == bool(url):
        raise UsageError("give a deployment NAME or --url, not both" if name else "give a deployment NAME or --url")
    if source == "host" and not name:
        raise UsageError("--from host benchmarks a deployment: give its NAME instead of --url")
    service = None
    if name:
        from gpuctl.cli.service import service_target

        service = service_target(app, name)
    if service is not None:  # a service: load on its router, priced at all its replicas
        from gpuctl.cli.service import bench_target

        target = bench_target(app, service, model=model, api_key=api_key, price_per_hour=price_per_hour)
    elif name:
        from gpuctl.deploy.secrets import read_api_key

        target = target_for_deployment(app.state.read(), name, model=model,
                                       api_key=api_key or read_api_key(app.state.dir, name),
                                       price_per_hour=price_per_hour)
    else:
        target = BenchTarget(url=str(url), model=model, api_key=api_key, price_per_hour=price_per_hour)
    spec = make_spec(
        target, endpoint=endpoint, concurrency=concurrency or [1 if rate in (None, [None]) else None],
        rate=rate or [None], burstiness=burstiness, requests=requests,
        duration_s=float(parse_duration(duration)) if duration else None, warmup=warmup, input_len=input_len,
        output_len=output_len, dataset=dataset, ignore_eos=ignore_eos, seed=seed, prefix_share=prefix_share,
        timeout_s=timeout, slo_ms=slo or {}, progress=not app.quiet,
    )
    report = _run(app, target, spec, source)
    runs = bench_runs(report, target.price_per_hour)
    if any(run.requests_ok for run in runs):
        store_results(app.state, target, spec, report, runs)
    _notes(app, report, target.price_per_hour)
    if app.json:
        from gpuctl.models.bench import BenchReport

        print_json(BenchReport(runs=runs).model_dump(mode="json"))
    else:
        lines, columns = _summary(runs, bool(slo))
        print_rows(app, lines, columns, empty="no runs")
    failed = failure_error(report, allow_failures, target.url)
    if failed:
        raise failed


def _sweep(app: App, name: str | None, url: str | None, rate: list[float | None] | None, duration: str | None,
           concurrency: list[int | None] | None, requests: int | None, input_len: int, output_len: int,
           slo: dict[str, float] | None, model: str | None, gpus: tuple[str, ...], providers: tuple[str, ...],
           count: int | None, engine: str | None, quantization: str | None, budget: float | None, parallel: int,
           dry_run: bool) -> None:
    """``--sweep``: check the flags, then gpuctl.cli.sweep does the work."""
    from gpuctl.catalog import resolve_gpu
    from gpuctl.cli.estimates import serving
    from gpuctl.cli.sweep import run_sweep
    from gpuctl.perf.cost import Slo
    from gpuctl.sweep.plan import SweepRequest

    if name or url:
        raise UsageError("--sweep deploys its own candidates: give no deployment NAME or --url")
    if rate not in (None, [None]) or duration:
        raise UsageError("--sweep benches at concurrencies (-c) for a number of requests (-n)",
                         "drop --rate and --duration")
    if not model or not gpus:
        raise UsageError("--sweep needs --for MODEL and --gpu GPU[,GPU...]",
                         "e.g. gpuctl bench --sweep --for llama-3.1-8b --gpu l40s,a100,h100")
    if slo and "e2e" in slo:
        raise UsageError("--sweep ranks by time to first token and inter-token latency: use ttft= and itl=")
    names = [part.strip() for value in gpus for part in value.split(",") if part.strip()]
    target = Slo(ttft_ms=slo.get("ttft"), itl_ms=slo.get("tpot")) if slo else None
    load = serving(app, engine=engine, quantization=quantization, input_len=input_len, output_len=output_len,
                   concurrency=None, slo=target)
    chosen = [c for c in concurrency or [] if c is not None]
    run_sweep(app, SweepRequest(
        model=model, gpus=list(dict.fromkeys(resolve_gpu(n) for n in names)), count=count,
        providers=[p.strip().lower() for v in providers for p in v.split(",") if p.strip()] or None,
        engine=load.engine, quantization=load.quantization,  # type: ignore[arg-type]
        load=load, concurrency=chosen or None, requests=requests, budget_usd=budget, parallel=parallel,
    ), dry_run=dry_run)


def _notes(app: App, report: LoadgenReport, price: float | None) -> None:
    """What the table cannot say: failures by cause, answers shorter than asked, token counts the server
    did not give, prompts it answered from its cache, runs whose client figures are not trustworthy."""
    for i, run in enumerate(report.runs, 1):
        label = f"run {i} (concurrency {run.concurrency or '-'}, rate {run.rate or 'max'})"
        if run.errors:
            causes = ", ".join(f"{cause} x{count}" for cause, count in sorted(run.errors.items()))
            example = next(iter(run.error_examples.values()), "")
            warn(app, f"{label}: {run.requests_failed} failed: {causes}" + (f" (e.g. {example})" if example else ""))
        if run.short_responses:
            got = run.output_tokens / max(run.requests_ok, 1)
            asked = run.output_tokens_requested / max(run.requests_ok, 1)
            warn(app, f"{label}: {run.short_responses} of {run.requests_ok} answers were shorter than asked "
                      f"({got:.0f} of {asked:.0f} output tokens on average): prompt plus --output-len may exceed "
                      "the server's context, or it ignores ignore_eos")
        if run.output_tokens_estimated:
            info(app, f"{label}: the server sent no token counts (usage); {run.output_tokens_estimated} answers "
                      "were counted one token per event")
        if run.cached_input_tokens:
            info(app, f"{label}: the server answered {run.cached_input_tokens} of {run.input_tokens} prompt "
                      "tokens from its prefix cache")
        if run.retried:
            info(app, f"{label}: {run.retried} requests were sent again: the server had closed the kept-alive "
                      "connection they went out on")
        if run.client.saturated:
            warn(app, f"{label}: client saturated ({'; '.join(run.client.reasons)}): its timestamps may be late, "
                      "so latencies read high. Use fewer requests in flight, or --from host")
        if run.client.sent_late and run.client.send_lag_ms:
            warn(app, f"{label}: requests left late (send lag p90 {run.client.send_lag_ms.p90:.1f} ms): the "
                      "load was lighter than asked; latencies are measured from the actual send")
    if price is None:
        info(app, "no price known: pass --price-per-hour for the cost per 1M tokens")


def _show_history(app: App, name: str | None) -> None:
    records = app.state.read().bench_runs
    if name:
        records = [r for r in records if r.deployment == name]
    # comparable loads side by side, cheapest per output token first
    records = sorted(records, key=lambda r: (r.input_len, r.output_len, r.run.concurrency or 0, r.run.rate or 0,
                                             r.run.cost_per_1m_output_tokens is None,
                                             r.run.cost_per_1m_output_tokens or 0.0))
    print_rows(app, records, _HISTORY_COLUMNS,
               empty="no stored benches yet: 'gpuctl bench NAME' measures a deployment and keeps the result")


def _run(app: App, target: BenchTarget, spec: LoadSpec, source: str) -> LoadgenReport:
    """Run the load from here (through an SSH tunnel when a deployment's endpoint is private), or with
    ``--from host`` inside the deployment's engine container, next to the GPU."""
    import dataclasses

    from gpuctl.bench.runner import run_local

    deployment = target.deployment
    if deployment is None or (source == "local" and not deployment.tunnel):
        return run_local(spec, ConsoleReporter(app))
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.access import endpoint_from_here, open_host
    from gpuctl.deploy.context import Timeouts

    ctx = deploy_context(app, Timeouts(), quiet=True)
    if source == "local":
        with endpoint_from_here(ctx, deployment) as base:
            return run_local(dataclasses.replace(spec, url=base), ConsoleReporter(app))
    if not deployment.host or not deployment.container:
        raise UsageError(f"deployment '{deployment.name}' runs at {deployment.provider}, which gives gpuctl no "
                         "shell next to its engine", "benchmark it from here (without --from host)")
    from gpuctl.bench.remote import aimed_at_engine, run_in_engine
    from gpuctl.engines import engine_module
    from gpuctl.host.docker import DockerEngine

    port = engine_module(deployment.engine or "vllm").PORT
    with open_host(ctx, deployment) as shell, ConsoleReporter(app).step(
            f"benchmarking inside {deployment.container} on {deployment.host}"):
        return run_in_engine(DockerEngine(shell, sudo=deployment.docker_sudo), aimed_at_engine(spec, port),
                             container=deployment.container)
