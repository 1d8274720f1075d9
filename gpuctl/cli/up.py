"""``gpuctl up``: deploy a model to a GPU (a rented one, or your own with ``--host``), or plan it (``--dry-run``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from gpuctl.app import App
from gpuctl.cli.estimates import load_options
from gpuctl.cli.fit import serving_options
from gpuctl.cli.options import json_option, quiet_option, yes_option
from gpuctl.cli.output import ConsoleReporter, info, print_json, warn
from gpuctl.errors import UsageError

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext, Timeouts
    from gpuctl.deploy.hosts import HostKeyDecision
    from gpuctl.host.connection import HostConnection
    from gpuctl.host.errors import UnknownHostKeyError
    from gpuctl.models.deployment import Deployment
    from gpuctl.models.recipe import EngineName, QuantMethod
    from gpuctl.perf.cost import Slo
    from gpuctl.perf.offers import Serving
    from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest

_CLOUD_ONLY = ("gpu", "count", "provider", "region", "spot", "max_price")


@click.command()
@click.argument("model", required=False)
@click.option("--gpu", default=None, metavar="GPU", help="GPU kind (aliases accepted); default: cheapest that fits.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N", help="GPUs per instance.")
@click.option("--provider", default=None, metavar="NAME|auto", help="Rent from this provider only (default: auto).")
@click.option("--region", default=None, help="Only offers in this region.")
@click.option("--spot", is_flag=True, help="Spot/interruptible capacity only (cheaper, can be reclaimed).")
@click.option("--max-price", type=click.FloatRange(min=0, min_open=True), default=None, metavar="USD",
              help="Highest price per hour for the whole instance.")
@click.option("--host", default=None, metavar="USER@ADDR[:PORT]|local",
              help="Deploy to a machine you have (over SSH, honouring ~/.ssh/config) or to this one's docker.")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="KEYFILE",
              help="SSH private key for --host (else the ssh agent, ~/.ssh/config and the project key).")
@click.option("--accept-host-key", is_flag=True, help="Pin the --host machine's SSH key on first contact.")
@click.option("--price-per-hour", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="What the --host machine costs, for cost accounting (default 0).")
@click.option("--ttl", default=None, metavar="DURATION",
              help="Tear down after this long (e.g. 90m, 2h); the host enforces it itself.")
@click.option("--idle", default=None, metavar="DURATION",
              help="Tear down after this long without a request (e.g. 30m); read from the engine's /metrics.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None, metavar="USD",
              help="Tear down when price x uptime reaches this many dollars.")
@click.option("--name", default=None, help="Deployment name (default: <model>-<gpu>-<4 hex>).")
@click.option("--image", default=None, metavar="IMAGE",
              help="Run this image instead of the engine's own, e.g. an arm64 build for a GH200; its CPU "
                   "architecture and CUDA version are then yours to match.")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Context length to serve (default: the recipe's default context).")
@click.option("--served-model-name", default=None, metavar="NAME",
              help="Model name clients send (vLLM only; default: the repo id).")
@click.option("--public/--private", default=False,
              help="Publish the port on all interfaces with a generated API key (default: private, SSH tunnel).")
@click.option("--keep-on-failure", is_flag=True, help="Leave what was created when a step fails (to debug it).")
@click.option("--allow-pickle", is_flag=True,
              help="Serve a model whose only weights are pickled (.bin/.pt), which can run code when loaded.")
@click.option("--launch-timeout", default="15m", show_default=True, metavar="DURATION",
              help="How long the provider may take to start the instance.")
@click.option("--ssh-timeout", default="5m", show_default=True, metavar="DURATION",
              help="How long the host may take to accept SSH.")
@click.option("--health-timeout", default="30m", show_default=True, metavar="DURATION",
              help="How long the engine may take to load the model and answer.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing at any provider.")
@click.option("-i", "--wizard", is_flag=True,
              help="Choose model, GPU offer, engine and TTL in a wizard (needs a terminal); writes gpuctl.yaml.")
@click.option("--print-command", is_flag=True,
              help="Run the wizard (-i), then print the equivalent 'gpuctl up' command instead of deploying.")
@click.option("--nodes", type=click.IntRange(min=1), default=1, metavar="N",
              help="One engine across N machines (vLLM multi-node), for a model no single machine holds.")
@click.option("--replicas", type=click.IntRange(min=1), default=None, metavar="N",
              help="N replicas behind vllm-router (default: 1, or the project's replicas:).")
@click.option("--spread", is_flag=True, help="With --replicas: spread them over providers and regions.")
@click.option("--router", "router", default="local", show_default=True, metavar="local|host|USER@HOST",
              help="With --replicas: where vllm-router runs (this machine, a replica's machine, or one you name).")
@click.option("--router-policy", type=click.Choice(["cache_aware", "round_robin", "power_of_two", "random",
                                                    "consistent_hash"]), default="cache_aware", show_default=True,
              help="With --replicas: how the router picks a replica.")
@click.option("--replace-failed", is_flag=True,
              help="With --replicas: 'gpuctl scale NAME' replaces replicas that died.")
@serving_options
@click.option("--optimize", type=click.Choice(["price", "token-cost"]), default="price", show_default=True,
              help="Choose the offer cheapest per hour, or cheapest per output token by estimate (see "
                   "--input-len, --output-len, --concurrency, --slo).")
@load_options
@yes_option
@quiet_option
@json_option
@click.pass_obj
def up(app: App, model: str | None, gpu: str | None, count: int | None, provider: str | None, region: str | None,
       spot: bool, max_price: float | None, host: str | None, identity: Path | None, accept_host_key: bool,
       price_per_hour: float | None, ttl: str | None, idle: str | None, budget: float | None, name: str | None,
       image: str | None, max_model_len: int | None,
       served_model_name: str | None, public: bool, keep_on_failure: bool, allow_pickle: bool, launch_timeout: str,
       ssh_timeout: str,
       health_timeout: str, dry_run: bool, wizard: bool, print_command: bool, nodes: int, replicas: int | None,
       spread: bool, router: str, router_policy: str, replace_failed: bool, engine: EngineName | None,
       gpu_memory_utilization: float | None, quantization: QuantMethod | None, hf_config: str | None, optimize: str,
       input_len: int, output_len: int, concurrency: int | Literal["max"] | None, slo: Slo | None) -> None:
    """Deploy MODEL (a recipe name or hf:ORG/NAME; default: the project's) to the cheapest GPU that fits.

    \b
    Shows the price and asks before launching (-y skips). Ctrl-C or a failed step tears down
    what was created (unless --keep-on-failure); 'gpuctl down NAME' finishes any cleanup.
    Defaults for MODEL, --gpu, --provider, --engine, --region, --ttl, --idle and --budget come from
    gpuctl.yaml.
    With -i, a wizard asks for what the flags do not say; -q prints only the endpoint's base URL
    (with --dry-run, only the engine's command line).
    """
    if wizard or print_command:
        from gpuctl.cli.wizard import up_wizard

        up_wizard(click.get_current_context(), print_command=print_command)
        return
    from gpuctl.catalog import resolve_gpu
    from gpuctl.durations import parse_duration, parse_ttl
    from gpuctl.plan import PlanRequest

    cloud_flags = {"gpu": gpu, "count": count, "provider": provider, "region": region, "spot": spot,
                   "max_price": max_price}
    _check_host_flags(host, cloud_flags, identity, accept_host_key, price_per_hour)
    project = app.project
    as_service = replicas is not None or project.replicas is not None or spread or replace_failed
    replicas = replicas or project.replicas or 1
    if nodes > 1 and (host is not None or as_service):
        raise UsageError("--nodes spans rented machines with one engine; it takes neither --host nor --replicas")
    if as_service and host is not None:
        raise UsageError("--replicas deploys to rented machines; --host names one machine",
                         "drop --host, or deploy one replica to it")
    if name:
        from gpuctl.deploy.naming import check_name

        check_name(name)
    model = model or project.model
    if not model:
        raise UsageError("no model given", "pass MODEL (see 'gpuctl models') or set model: in gpuctl.yaml")
    if host is None:
        gpu = gpu or project.gpu
        provider = provider or project.provider or "auto"
        if provider != "auto":
            app.registry.create(provider)  # an unknown name fails here, with close matches
        region = region or project.region
    ttl = ttl or project.ttl
    idle = idle or project.idle
    budget = budget if budget is not None else project.budget
    request = PlanRequest(
        model=model, hf_config=hf_config, gpu=resolve_gpu(gpu) if gpu else None, count=count,
        providers=None if provider in (None, "auto") else [provider], region=region,
        engine=engine or project.engine or "vllm", spot=spot, max_price=max_price,
        ttl_seconds=parse_ttl(ttl) if ttl else None, idle_seconds=parse_duration(idle) if idle else None,
        budget_usd=budget, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization, quantization=quantization,
        served_model_name=served_model_name, public=public, image=image, nodes=nodes,
        optimize=optimize,  # type: ignore[arg-type]
        load=_load(optimize, input_len, output_len, concurrency, slo),
    )
    timeouts = _timeouts(launch_timeout, ssh_timeout, health_timeout)
    # a plan alone stays quiet off a terminal; a deploy always reports its steps (plain lines there)
    ctx = deploy_context(app, timeouts, quiet=dry_run and not sys.stderr.isatty())
    inputs, connection = _inputs(app, ctx, request, host, identity, accept_host_key, price_per_hour or 0.0)
    if nodes > 1:
        _up_nodes(app, ctx, request, inputs, name=name, dry_run=dry_run, allow_pickle=allow_pickle,
                  keep_on_failure=keep_on_failure)
        return
    if as_service:  # a service, of one replica too (it can be scaled later)
        from gpuctl.cli.service import deploy_service, dry_run_service

        if dry_run:
            dry_run_service(app, ctx, request, inputs, replicas=replicas, name=name, spread=spread)
            return
        deploy_service(app, ctx, request, inputs, replicas=replicas, name=name, router=router, policy=router_policy,
                       spread=spread, replace_failed=replace_failed, allow_pickle=allow_pickle)
        return
    with _closing(connection):
        if dry_run:
            from gpuctl.deploy.planning import candidate_plans

            plan = candidate_plans(ctx, request, inputs, limit=1, keyless_ok=True)[0]  # what 'up' would launch first
            _warn_all(app, plan.warnings)
            if app.json:
                print_json(plan.model_dump(mode="json"))
            elif app.quiet:  # the essential value: what would run on the GPU host
                click.echo(plan.command)
            else:
                _render_plan(plan)
            return
        _deploy(app, ctx, request, inputs, host=host, identity=identity, accept_host_key=accept_host_key, name=name,
                keep_on_failure=keep_on_failure, allow_pickle=allow_pickle, connection=connection)


def _up_nodes(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, name: str | None,
              dry_run: bool, allow_pickle: bool, keep_on_failure: bool) -> None:
    """``--nodes N``: plan (``--dry-run``) or deploy one engine across N machines."""
    from gpuctl.cli.nodes import deploy_nodes, node_plans

    if dry_run:
        plan = node_plans(app, ctx, request, inputs)[0]
        _warn_all(app, plan.warnings)
        if app.json:
            print_json(plan.model_dump(mode="json"))
        else:
            _render_plan(plan)
        return
    _render_ready(app, deploy_nodes(app, ctx, request, inputs, name=name, allow_pickle=allow_pickle,
                                    keep_on_failure=keep_on_failure))


def _load(optimize: str, input_len: int, output_len: int, concurrency: int | Literal["max"] | None,
          slo: Slo | None) -> Serving | None:
    """What estimates are for, when they choose the offer (--optimize token-cost) or filter it (--slo)."""
    if optimize == "price" and slo is None:
        return None
    from gpuctl.perf.offers import Serving

    return Serving(input_tokens=input_len, output_tokens=output_len, concurrency=concurrency, slo=slo)


def _choice_lines(plan: DeployPlan) -> list[str]:
    """Why the plan took its offer, when estimates chose it."""
    choice = plan.choice
    if choice is None:
        return []
    return [f"  choice   {choice.chosen.line()}", f"           {choice.reason}",
            f"           (estimates: {choice.load})"]


def _check_host_flags(host: str | None, cloud_flags: Mapping[str, object], identity: Path | None,
                      accept_host_key: bool, price_per_hour: float | None) -> None:
    from gpuctl.providers.ssh import HostProvider

    if host is None and cloud_flags["provider"] == HostProvider.name:
        raise UsageError("the ssh provider deploys to a machine you name", "use --host USER@ADDR[:PORT] or local")
    if host is not None:
        given = [f"--{key.replace('_', '-')}" for key in _CLOUD_ONLY if cloud_flags[key]]
        if given:
            raise UsageError(f"{', '.join(given)} cannot be combined with --host",
                             "--host deploys to the GPUs that machine has")
        return
    extra = [flag for flag, value in (("--identity", identity), ("--accept-host-key", accept_host_key),
                                      ("--price-per-hour", price_per_hour is not None)) if value]
    if extra:
        raise UsageError(f"{', '.join(extra)} only apply with --host")


def _timeouts(launch: str, ssh: str, health: str) -> Timeouts:
    from gpuctl.deploy.context import Timeouts
    from gpuctl.durations import parse_duration

    return Timeouts(launch=parse_duration(launch), ssh=parse_duration(ssh), health=parse_duration(health))


def deploy_context(app: App, timeouts: Timeouts, *, quiet: bool) -> DeployContext:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.events import NullReporter

    return DeployContext(store=app.state, registry=app.registry,
                         reporter=NullReporter() if quiet else ConsoleReporter(app), timeouts=timeouts)


def _inputs(app: App, ctx: DeployContext, request: PlanRequest, host: str | None, identity: Path | None,
            accept_host_key: bool, price_per_hour: float) -> tuple[PlanInputs, HostConnection | None]:
    """The recipe and the offers: the host's own (``--host``, with the connection that read them), or every
    provider's."""
    from gpuctl.plan import plan_inputs

    if host is None:
        return plan_inputs(request, project_root=app.project_root, registry=app.registry,
                           reporter=ctx.reporter), None
    from gpuctl.deploy.hosts import connect, host_offer
    from gpuctl.host.connection import HostConnection
    from gpuctl.host.target import parse_target

    target = parse_target(host)
    # the offer comes from the host itself (its GPUs), so reading it means connecting now; the same
    # connection (one SSH login) then serves the whole deploy and its health bench
    recipe_first = plan_inputs(request, project_root=app.project_root, offers=[])
    with ctx.reporter.step(f"reading the GPUs of {target}"):
        connection = HostConnection(connect(target, ctx.state_dir, identity=identity,
                                            accept_host_key=accept_host_key, decide=_host_key_prompt(app)))
        with _closing(connection, on_error_only=True):
            offer = host_offer(connection.shell, target, price_per_hour)
    return recipe_first.model_copy(update={"offers": [offer]}), connection


@contextmanager
def _closing(connection: HostConnection | None, *, on_error_only: bool = False) -> Iterator[None]:
    """Close a host connection after the block (or only when it fails)."""
    close = getattr(connection, "close", None)
    try:
        yield
    except BaseException:
        if close is not None:
            close()
        raise
    if close is not None and not on_error_only:
        close()


def _host_key_prompt(app: App) -> HostKeyDecision | None:
    """Ask on a terminal whether to pin an unknown host key; None (refuse) without one."""
    if not app.can_prompt:
        return None

    def decide(exc: UnknownHostKeyError) -> bool:
        click.echo(f"The host key of {exc.host} is not known yet:\n  {exc.key_type} {exc.fingerprint}", err=True)
        return click.confirm("Trust it and pin it for this project?", default=False, err=True)

    return decide


def _deploy(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, host: str | None,
            identity: Path | None, accept_host_key: bool, name: str | None, keep_on_failure: bool,
            allow_pickle: bool, connection: HostConnection | None) -> None:
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.deploy.lifecycle import UpRequest, up
    from gpuctl.deploy.planning import MAX_OFFERS
    from gpuctl.deploy.proposal import deploy_summary, propose
    from gpuctl.host.health import EngineHealthError
    from gpuctl.host.target import parse_target

    # before the price is confirmed: a pickle-only, gated or missing repo stops here, having cost nothing
    proposal = propose(ctx, request, inputs, name=name, limit=1 if host else MAX_OFFERS, allow_pickle=allow_pickle)
    _warn_all(app, proposal.plan.warnings)
    confirm_or_refuse(app, "Deploy?", shown=deploy_summary(proposal),
                      refused="not deploying without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the price shown above")
    try:
        deployment = up(ctx, UpRequest(
            name=proposal.name, plans=proposal.plans, host=parse_target(host) if host else None, identity=identity,
            accept_host_key=accept_host_key, keep_on_failure=keep_on_failure, decide_host_key=_host_key_prompt(app),
            connection=connection, secrets=proposal.secrets, allow_pickle=allow_pickle, manifest=proposal.manifest,
            on_ready=lambda ready: _health_bench(app, ctx, ready, connection),
        ))
    except EngineHealthError as exc:
        if exc.log_tail.strip():
            click.echo("last lines of the engine log:", err=True)
            click.echo("".join(f"  {line}\n" for line in exc.log_tail.strip().splitlines()[-20:]), err=True, nl=False)
        raise
    _render_ready(app, deployment)


def _health_bench(app: App, ctx: DeployContext, deployment: Deployment, connection: HostConnection | None) -> None:
    """A few requests against the new endpoint (through ``connection``'s session when it is private): its first
    TTFT and tokens/s (a failure here only warns)."""
    from gpuctl.bench.runner import smoke_bench
    from gpuctl.deploy.access import endpoint_from_here
    from gpuctl.deploy.secrets import read_api_key
    from gpuctl.errors import GpuctlError

    try:
        shell = connection.shell if connection is not None else None
        with endpoint_from_here(ctx, deployment, shell=shell) as base, ConsoleReporter(app).step("health bench"):
            run = smoke_bench(base, model=deployment.served_model_name, price_per_hour=deployment.price_per_hour,
                              api_key=read_api_key(ctx.state_dir, deployment.name))
    except (GpuctlError, ValueError) as exc:
        warn(app, f"health bench failed: {exc}")
        return
    except KeyboardInterrupt:  # the deployment is ready: only the bench stops
        warn(app, f"health bench interrupted; {deployment.name} is ready and keeps running "
                  f"('gpuctl down {deployment.name}' stops it)")
        return
    if run.ttft_ms is not None:
        info(app, f"health bench: TTFT p50 {run.ttft_ms.p50:.0f} ms, {run.output_tokens_per_s:.1f} output tokens/s")


def _render_ready(app: App, deployment: Deployment) -> None:
    from gpuctl.deploy.endpoint import openai_base
    from gpuctl.deploy.phases import cold_start

    assert deployment.endpoint is not None
    base = openai_base(deployment.endpoint)
    cold = cold_start(deployment)
    if cold is not None:
        from gpuctl.cli.coldstart import breakdown_lines

        info(app, "\n".join(breakdown_lines(cold, deployment.price_per_hour)))
    if app.json:
        print_json({**deployment.model_dump(mode="json"),
                    "cold_start": cold.model_dump(mode="json") if cold is not None else None})
        return
    if app.quiet:
        click.echo(base)
        return
    auth = ' -H "Authorization: Bearer $OPENAI_API_KEY"' if deployment.public else ""
    body = f'{{"model": "{deployment.served_model_name}", "prompt": "Hello", "max_tokens": 16}}'
    lines = [f"{deployment.name} is ready: {base}"]
    if deployment.tunnel:
        lines.append(f"  private endpoint: first run 'gpuctl ssh {deployment.name} --tunnel' in another terminal")
    lines += [
        f'  eval "$(gpuctl env {deployment.name})"',
        f"  curl {base}/completions -H 'Content-Type: application/json'{auth} -d '{body}'",
        f"  gpuctl down {deployment.name}   # stop paying",
    ]
    click.echo("\n".join(lines))


def _warn_all(app: App, notes: list[str]) -> None:
    for note in notes:
        warn(app, note)


def _forecast(plan: DeployPlan) -> list[str]:
    """The plan's cold-start forecast, indented under ``wait``."""
    if plan.cold_start is None:
        return []
    from gpuctl.cli.coldstart import forecast_lines

    first, *rest = forecast_lines(plan.cold_start, plan.offer.price_per_hour)
    return [f"  wait     {first}", *(f"         {line}" for line in rest)]


def _render_plan(plan: DeployPlan) -> None:
    from gpuctl.durations import format_duration
    from gpuctl.limits import describe
    from gpuctl.models.engine import HOST_PORT

    offer, row, spec, model = plan.offer, plan.fit, plan.engine, plan.model
    where = f"{offer.region}" + (f", {offer.tier}" if offer.tier else "") + (", spot" if offer.spot else "")
    cost = (f"{format_duration(plan.ttl_seconds)}, about ${plan.estimated_cost_usd:.2f}" if plan.ttl_seconds
            else "none (runs until 'gpuctl down')")
    nodes = f"{plan.nodes} nodes of " if plan.nodes > 1 else ""
    lines = [
        f"plan for {model.name} ({model.repo} @ {model.revision[:12]})",
        f"  offer    {nodes}{offer.provider} {offer.instance_type}: {offer.gpu_count} x {offer.gpu} ({where}) "
        f"${offer.price_per_hour:.2f}/h{' each' if plan.nodes > 1 else ''}, {offer.source} price of "
        f"{offer.as_of:%Y-%m-%d}",
        f"  fit      weights {row.weights_gb:.1f} GB/GPU, KV cache {row.kv_cache_gb:.1f} GB/GPU = "
        f"{row.kv_cache_tokens} tokens: {row.concurrent_sequences} sequences of {row.context}, "
        f"max context {row.max_context}",
        f"  engine   {spec.engine} {spec.image}, tensor parallel {spec.tensor_parallel_size}, "
        f"max-model-len {spec.max_model_len}, serves '{spec.served_model_name}'",
        f"  endpoint {spec.bind_address}:{HOST_PORT} -> container :{spec.port}, health {spec.health_path}, "
        + ("public, API key required" if spec.public else "private (SSH tunnel)"),
        f"  ttl      {cost}",
        *([f"  limits   {describe(plan.limits, offer.price_per_hour)}"] if plan.limits is not None else []),
        *_forecast(plan),
        f"  offers   {plan.offers_fitting} of {plan.offers_considered} fit",
        *_choice_lines(plan),
        "command:",
        f"  {plan.command}",
        "environment:",
        *(f"  {key}={value}" for key, value in plan.environment.items()),
    ]
    click.echo("\n".join(lines))
