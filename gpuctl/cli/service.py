"""The CLI side of services (``gpuctl up --replicas N``, ``scale``, and a service NAME in status/env/down/bench)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gpuctl.app import App
from gpuctl.cli.output import info, print_json, warn

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.service import ReplicaPlan
    from gpuctl.deploy.service_view import ServiceView
    from gpuctl.models.deployment import Service
    from gpuctl.plan import PlanInputs, PlanRequest


def deploy_service(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, replicas: int,
                   name: str | None, router: str, policy: str, spread: bool, replace_failed: bool,
                   allow_pickle: bool) -> None:
    """``gpuctl up --replicas N``: plan N replicas, show every offer and the total, deploy, route."""
    from gpuctl.deploy import naming
    from gpuctl.deploy import service as services

    name = services.check_service_name(name or naming.default_name(inputs.recipe.name, f"x{replicas}"))
    proposal = services.propose_replicas(ctx, request, inputs, services.replica_names(name, 1, replicas),
                                         spread=spread, allow_pickle=allow_pickle)
    for note in proposal.replicas[0].plans[0].warnings:
        warn(app, note)
    confirm_replicas(app, name, proposal.replicas, router=router)
    service_request = services.ServiceRequest(
        name=name, replicas=proposal.replicas, plan_request=request, router=router, policy=policy, spread=spread,
        replace_failed=replace_failed, allow_pickle=allow_pickle, secrets=proposal.secrets,
        manifest=proposal.manifest,
        on_replica=lambda d: info(app, f"{d.name} is healthy and behind the router"))
    service = services.up_service(ctx, service_request)
    render_ready(app, ctx, service)


def dry_run_service(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, replicas: int,
                    name: str | None, spread: bool) -> None:
    """``up --replicas N --dry-run``: every replica's plan and the total, nothing rented."""
    from gpuctl.deploy import naming
    from gpuctl.deploy import service as services
    from gpuctl.deploy.planning import describe_offer

    name = name or naming.default_name(inputs.recipe.name, f"x{replicas}")
    plans = services.plan_replicas(ctx, request, inputs, services.replica_names(name, 1, replicas), spread=spread)
    for note in plans[0].plans[0].warnings:
        warn(app, note)
    total = services.price_per_hour(plans)
    if app.json:
        print_json({"name": name, "price_per_hour": total,
                    "replicas": [{"name": p.name, **p.plans[0].model_dump(mode="json")} for p in plans]})
        return
    lines = [f"plan for {name}: {replicas} replica(s) of {inputs.recipe.name} behind vllm-router, ${total:.2f}/h"]
    lines += [f"  {p.name}: {describe_offer(p.offer)}" for p in plans]
    lines += ["command (each replica, public behind the service's API key):", f"  {plans[0].plans[0].command}"]
    click.echo("\n".join(lines))


def confirm_replicas(app: App, name: str, plans: list[ReplicaPlan], *, router: str, adding: bool = False) -> None:
    """Every offer and the total $/h in one question: nothing is rented without it."""
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.deploy.service import replicas_summary

    confirm_or_refuse(app, "Add them?" if adding else "Deploy?",
                      shown=replicas_summary(name, plans, router=router, adding=adding),
                      refused="not deploying without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the prices shown above")


def render_ready(app: App, ctx: DeployContext, service: Service) -> None:
    from gpuctl.deploy.service_view import service_view

    view = service_view(ctx, service, probe_health=False)
    if app.json:
        print_json(view.model_dump(mode="json"))
        return
    if app.quiet:
        click.echo(view.endpoint or "")
        return
    lines = [f"{service.name} is ready: {view.endpoint} ({len(view.replicas)} replicas behind vllm-router, "
             f"${view.price_per_hour:.2f}/h)"]
    if service.router is not None and service.router.host is not None:
        lines.append(f"  the router listens on {service.router.host}'s loopback: "
                     f"ssh -N -L {service.router.port}:127.0.0.1:{service.router.port} {service.router.host}")
    lines += [f'  eval "$(gpuctl env {service.name})"', f"  gpuctl status {service.name}",
              f"  gpuctl scale {service.name} N", f"  gpuctl down {service.name}   # stop paying"]
    click.echo("\n".join(lines))


def render_view(app: App, view: ServiceView) -> None:
    """``gpuctl status NAME`` of a service."""
    from gpuctl.cli.output import Column, print_rows
    from gpuctl.durations import format_duration

    def human_duration(seconds: float | None) -> str | None:
        return None if seconds is None else format_duration(round(seconds / 60) * 60 if seconds >= 600 else seconds)

    if app.json:
        print_json(view.model_dump(mode="json"))
        return
    router = view.router
    where = "this machine" if router is None or router.host is None else router.host
    state = "-" if router is None else ("up" if router.up else ("not asked" if router.up is None else
                                                                 f"DOWN ({router.error})"))
    info(app, f"service {view.name}: {view.status}, {view.replicas_running} of {view.replicas_wanted} replicas "
              f"running, ${view.price_per_hour:.2f}/h, cost so far ${view.cost_usd:.2f}")
    info(app, f"router: {view.endpoint or '-'} on {where} ({router.policy if router else '-'}), {state}")
    print_rows(app, view.replicas, [
        Column("REPLICA", "name"), Column("STATUS", "status"), Column("PROVIDER", "provider"),
        Column("GPU", lambda r: f"{r.gpu_count} x {r.gpu}" if r.gpu else None),
        Column("ENDPOINT", "endpoint"), Column("UPTIME", lambda r: human_duration(r.uptime_seconds)),
        Column("$/HR", lambda r: f"${r.price_per_hour:.2f}" if r.price_per_hour is not None else None),
        Column("COST", lambda r: f"${r.cost_usd:.2f}" if r.cost_usd is not None else None),
        Column("HEALTH", "health"), Column("ROUTER", "routed"),
    ], empty="no replicas")
    for problem in view.problems:
        warn(app, problem)


def service_target(app: App, name: str) -> Service | None:
    """The service called ``name``, if there is one (a name may be a plain deployment's)."""
    return app.state.read().services.get(name)


def env_lines(app: App, service: Service) -> list[str]:
    import shlex

    from gpuctl.deploy.endpoint import openai_base
    from gpuctl.deploy.secrets import read_api_key
    from gpuctl.errors import UsageError

    if service.router is None or service.status in ("terminating", "terminated"):
        raise UsageError(f"service '{service.name}' has no router (status {service.status})",
                         f"'gpuctl status {service.name}' shows its state")
    key = read_api_key(app.state.dir, service.name) or "EMPTY"
    return [f"export OPENAI_BASE_URL={shlex.quote(openai_base(service.router.url))}",
            f"export OPENAI_API_KEY={shlex.quote(key)}"]


def take_down(app: App, ctx: DeployContext, service: Service) -> None:
    """``gpuctl down NAME`` of a service: every replica out of the router and down, then the router."""
    from gpuctl.deploy import service as services
    from gpuctl.deploy.service_view import service_view

    if service.status == "terminated":
        info(app, f"{service.name} is already down: nothing to do")
        if app.json:
            print_json([])
        return
    ended = services.take_down_service(ctx, service.name)
    view = service_view(ctx, ended, probe_health=False)
    if app.json:
        print_json([r.model_dump(mode="json") for r in view.replicas])
        return
    click.echo(f"{service.name}: down ({len(view.replicas)} replicas and the router), cost ${view.cost_usd:.2f}")


def bench_target(app: App, service: Service, *, model: str | None, api_key: str | None,
                 price_per_hour: float | None) -> Any:
    """``gpuctl bench NAME`` of a service: the load goes to its router (on this machine's loopback)."""
    from gpuctl.bench.runner import BenchTarget
    from gpuctl.deploy.secrets import read_api_key
    from gpuctl.errors import UsageError

    if service.router is None or service.status not in ("running", "degraded"):
        raise UsageError(f"service '{service.name}' is {service.status}", f"'gpuctl status {service.name}'")
    if service.router.host is not None:
        raise UsageError(f"the router of '{service.name}' listens on {service.router.host}'s loopback",
                         f"open 'ssh -N -L {service.router.port}:127.0.0.1:{service.router.port} "
                         f"{service.router.host}', then 'gpuctl bench --url {service.router.url}'")
    deployments = app.state.read().deployments
    replicas = [deployments[m] for m in service.members if m in deployments and deployments[m].status == "running"]
    served = model or next((d.served_model_name for d in replicas if d.served_model_name), None)
    price = price_per_hour if price_per_hour is not None else round(sum(d.price_per_hour or 0 for d in replicas), 4)
    return BenchTarget(url=service.router.url, model=served, api_key=api_key or read_api_key(app.state.dir,
                                                                                             service.name),
                       price_per_hour=price)
