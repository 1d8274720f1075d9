"""``gpuctl up``: deploy a model to a GPU. For now it plans only (``--dry-run``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.fit import serving_options
from gpuctl.cli.options import json_option, yes_option
from gpuctl.cli.output import ConsoleReporter, print_json, warn
from gpuctl.errors import UsageError
from gpuctl.events import NullReporter

if TYPE_CHECKING:
    from gpuctl.plan import DeployPlan


@click.command()
@click.argument("model", required=False)
@click.option("--gpu", default=None, metavar="GPU", help="GPU kind (aliases accepted); default: cheapest that fits.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N", help="GPUs per instance.")
@click.option("--provider", default=None, metavar="NAME|auto", help="Rent from this provider only (default: auto).")
@click.option("--region", default=None, help="Only offers in this region.")
@click.option("--spot", is_flag=True, help="Spot/interruptible capacity only (cheaper, can be reclaimed).")
@click.option("--max-price", type=click.FloatRange(min=0, min_open=True), default=None, metavar="USD",
              help="Highest price per hour for the whole instance.")
@click.option("--ttl", default=None, metavar="DURATION",
              help="Tear down after this long (e.g. 90m, 2h); the host enforces it itself.")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Context length to serve (default: the recipe's default context).")
@click.option("--served-model-name", default=None, metavar="NAME",
              help="Model name clients send (vLLM only; default: the repo id).")
@click.option("--public/--private", default=False,
              help="Publish the port on all interfaces with a generated API key (default: private, SSH tunnel).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing at any provider.")
@serving_options
@yes_option
@json_option
@click.pass_obj
def up(app: App, model: str | None, gpu: str | None, count: int | None, provider: str | None, region: str | None,
       spot: bool, max_price: float | None, ttl: str | None, max_model_len: int | None,
       served_model_name: str | None, public: bool, dry_run: bool, engine: str | None,
       gpu_memory_utilization: float | None, quantization: str | None, hf_config: str | None) -> None:
    """Deploy MODEL (a recipe name or hf:ORG/NAME; default: the project's) to the cheapest GPU that fits.

    \b
    Defaults for MODEL, --gpu, --provider, --engine, --region and --ttl come from gpuctl.yaml.
    """
    if not dry_run:
        raise UsageError("deploying is not available in this version of gpuctl",
                         "add --dry-run to see what 'gpuctl up' would do")
    from gpuctl.catalog import resolve_gpu
    from gpuctl.durations import parse_duration
    from gpuctl.plan import PlanRequest, plan_deployment

    project = app.project
    model = model or project.model
    if not model:
        raise UsageError("no model given", "pass MODEL (see 'gpuctl models') or set model: in gpuctl.yaml")
    gpu = gpu or project.gpu
    provider = provider or project.provider or "auto"
    if provider != "auto":
        app.registry.create(provider)  # an unknown name fails here, with close matches
    ttl = ttl or project.ttl
    request = PlanRequest(
        model=model, hf_config=hf_config, gpu=resolve_gpu(gpu) if gpu else None, count=count,
        providers=None if provider == "auto" else [provider], region=region or project.region,
        engine=engine or project.engine or "vllm", spot=spot, max_price=max_price,
        ttl_seconds=parse_duration(ttl) if ttl else None, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization, quantization=quantization,
        served_model_name=served_model_name, public=public,
    )
    reporter = ConsoleReporter(app) if sys.stderr.isatty() else NullReporter()
    plan = plan_deployment(request, project_root=app.project_root, registry=app.registry, reporter=reporter)
    for note in plan.warnings:
        warn(app, note)
    if app.json:
        print_json(plan.model_dump(mode="json"))
    else:
        _render(plan)


def _render(plan: DeployPlan) -> None:
    from gpuctl.durations import format_duration
    from gpuctl.models.engine import HOST_PORT

    offer, row, spec, model = plan.offer, plan.fit, plan.engine, plan.model
    where = f"{offer.region}" + (f", {offer.tier}" if offer.tier else "") + (", spot" if offer.spot else "")
    cost = (f"{format_duration(plan.ttl_seconds)}, about ${plan.estimated_cost_usd:.2f}" if plan.ttl_seconds
            else "none (runs until 'gpuctl down')")
    lines = [
        f"plan for {model.name} ({model.repo} @ {model.revision[:12]})",
        f"  offer    {offer.provider} {offer.instance_type}: {offer.gpu_count} x {offer.gpu} ({where}) "
        f"${offer.price_per_hour:.2f}/h, {offer.source} price of {offer.as_of:%Y-%m-%d}",
        f"  fit      weights {row.weights_gb:.1f} GB/GPU, KV cache {row.kv_cache_gb:.1f} GB/GPU = "
        f"{row.kv_cache_tokens} tokens: {row.concurrent_sequences} sequences of {row.context}, "
        f"max context {row.max_context}",
        f"  engine   {spec.engine} {spec.image}, tensor parallel {spec.tensor_parallel_size}, "
        f"max-model-len {spec.max_model_len}, serves '{spec.served_model_name}'",
        f"  endpoint {spec.bind_address}:{HOST_PORT} -> container :{spec.port}, health {spec.health_path}, "
        + ("public, API key required" if spec.public else "private (SSH tunnel)"),
        f"  ttl      {cost}",
        f"  offers   {plan.offers_fitting} of {plan.offers_considered} fit",
        "command:",
        f"  {plan.command}",
        "environment:",
        *(f"  {key}={value}" for key, value in plan.environment.items()),
    ]
    click.echo("\n".join(lines))
