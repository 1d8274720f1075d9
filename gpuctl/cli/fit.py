"""``gpuctl fit``: which GPUs can serve a model, at what context, how many sequences at once, and how fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import click

from gpuctl.app import App
from gpuctl.cli.estimates import ESTIMATE_COLUMNS, bench_history, load_options, serving
from gpuctl.cli.models import hf_config_option
from gpuctl.cli.options import json_option
from gpuctl.cli.output import Column, info, print_rows
from gpuctl.models.recipe import EngineName, QuantMethod

if TYPE_CHECKING:
    from gpuctl.perf.cost import Slo

F = TypeVar("F", bound=Callable[..., Any])


def serving_options(func: F) -> F:
    """The flags the memory math depends on (shared by ``fit`` and ``up``)."""
    for option in reversed((
        click.option("--engine", type=click.Choice(get_args(EngineName)), default=None,
                     help="Inference engine (default: vllm, or the project's)."),
        click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), default=None,
                     metavar="FRACTION", help="Share of each GPU's memory the engine may use (default 0.9)."),
        click.option("--quantization", type=click.Choice(get_args(QuantMethod)), default=None,
                     help="Serve quantized: fp8/eetq/bitsandbytes quantize while loading; awq/gptq need an "
                          "AWQ/GPTQ checkpoint."),
        hf_config_option,
    )):
        func = option(func)
    return func


@click.command()
@click.argument("model")
@click.option("--context", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Tokens per sequence to plan for (default: the recipe's default context).")
@click.option("--gpu", "gpus", multiple=True, metavar="GPU", help="Only these GPUs (repeatable; aliases accepted).")
@click.option("--count", "counts", type=click.IntRange(min=1), multiple=True, metavar="N",
              help="Only these GPU counts (repeatable; default: 1, 2, 4, 8).")
@click.option("--all", "all_rows", is_flag=True, help="One row per GPU and count, not just the fewest that fit.")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Machines the model spans (one pipeline stage each); counts and sizes stay per machine and GPU.")
@serving_options
@load_options
@json_option
@click.pass_obj
def fit(app: App, model: str, context: int | None, gpus: tuple[str, ...], counts: tuple[int, ...], all_rows: bool,
        nodes: int, engine: str | None, gpu_memory_utilization: float | None, quantization: str | None,
        hf_config: str | None, input_len: int, output_len: int, concurrency: int | Literal["max"] | None,
        slo: Slo | None) -> None:
    """Show for every known GPU whether MODEL fits, the largest context, concurrent sequences, and how fast.

    \b
    By default each GPU gets one row: the fewest GPUs (1, 2, 4 or 8) that fit.
    Memory per GPU = weights / GPUs + KV cache + engine overhead, within the
    --gpu-memory-utilization share of the GPU. MODEL is a recipe name or hf:ORG/NAME.
    A model that fits no single GPU gets the smallest single machine that serves
    it (more GPUs, or FP8 where the GPU has it) before any multi-node shape.
    Each row that fits carries the performance model's estimate for --input-len,
    --output-len and --concurrency (corrected by this project's benches: BASIS
    'measured'), and $ per 1M output tokens at the cheapest offer known here
    (cached or snapshot prices; no provider is asked). See docs/cost-per-token.md.
    """
    from gpuctl.catalog import resolve_gpu, resolve_gpus
    from gpuctl.fit import DEFAULT_GPU_COUNTS, FitSettings, fit_table, memory_facts, smallest_fitting
    from gpuctl.lookup import look_up
    from gpuctl.models.offer import OfferQuery
    from gpuctl.perf.offers import Estimator
    from gpuctl.pricing import known_offers
    from gpuctl.recipes import resolve_model

    recipe = resolve_model(model, app.project_root, hf_config)
    wanted = serving(app, engine=engine, quantization=quantization, input_len=input_len, output_len=output_len,
                     concurrency=concurrency, slo=slo)
    settings = FitSettings(engine=wanted.engine,  # type: ignore[arg-type]
                           gpu_memory_utilization=gpu_memory_utilization, quantization=quantization)  # type: ignore[arg-type]
    chosen = [resolve_gpu(g) for g in gpus] if gpus else None
    rows = fit_table(recipe, context, chosen, counts or DEFAULT_GPU_COUNTS, settings, nodes=nodes)
    if not (all_rows or counts):
        rows = smallest_fitting(rows)
    estimator = Estimator(recipe, wanted, bench_history(app))
    # on-demand, as `gpuctl prices` asks by default: its cached answer prices the rows
    offers = known_offers(OfferQuery(spot=False), registry=app.registry) if any(r.fits for r in rows) else []
    estimated = [estimator.fit_row(row, offers) for row in rows]
    if not app.json:
        facts, ctx = memory_facts(recipe, settings.quantization), context or recipe.default_context
        info(app, f"{recipe.name}: weights {facts.weights_gb:.1f} GB, KV cache {facts.kv_bytes_per_token / 1e3:g} "
                  f"kB/token ({facts.kv_bytes_per_token * ctx / 1e9:.2f} GB per {ctx}-token sequence); "
                  "sizes below are GB per GPU" + (f" and counts per machine, on {nodes} machines" if nodes > 1 else ""))
        info(app, f"estimates: {wanted.describe()}; $/1M OUT at the cheapest offer known here")
    lookup = look_up(recipe, context, settings, resolve_gpus(chosen) if chosen else None)
    advice = lookup.advice()
    if nodes > 1 and lookup.machine is not None:
        advice = (f"look up before out: {lookup.machine.describe()} in one machine serves {recipe.name}; "
                  "several machines add a network hop between pipeline stages to every token")
    if advice:
        info(app, advice)
    print_rows(app, estimated, [
        Column("GPU", "gpu"),
        Column("N", "gpu_count", justify="right"),
        Column("VRAM", lambda r: f"{r.vram_gb:g}", justify="right"),
        Column("FITS", lambda r: "yes" if r.fits else "no"),
        Column("MAX CTX", "max_context", justify="right"),
        Column("SEQS", "concurrent_sequences", justify="right"),
        Column("WEIGHTS", lambda r: f"{r.weights_gb:.1f}", justify="right"),
        Column("KV CACHE", lambda r: f"{r.kv_cache_gb:.1f}", justify="right"),
        *ESTIMATE_COLUMNS,
        Column("WHY NOT", "reason"),
    ], empty="no GPUs to compare")
