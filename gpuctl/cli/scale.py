"""``gpuctl scale NAME [N]``: add or remove replicas of a service; take out (and replace) the ones that died."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option, yes_option
from gpuctl.cli.output import info, warn


@click.command()
@click.argument("name")
@click.argument("count", type=click.IntRange(min=1), required=False)
@click.option("--allow-pickle", is_flag=True, help="As for 'gpuctl up': serve pickled weights.")
@yes_option
@quiet_option
@json_option
@click.pass_obj
def scale(app: App, name: str, count: int | None, allow_pickle: bool) -> None:
    """Set service NAME to COUNT replicas (default: the count it should have).

    \b
    Replicas that died are always taken out of the router and torn down (they bill for nothing);
    a service made with --replace-failed (or given COUNT) gets new ones in their place; any other
    reports them and runs short ('degraded') until 'gpuctl scale NAME COUNT'.
    New replicas are planned like the first ones, shown with their prices and the new total, and
    join the router once healthy; removed ones leave the router before they are torn down.
    """
    from gpuctl.cli.service import confirm_replicas, render_ready
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy import router as routing
    from gpuctl.deploy import service as services
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.records import is_active
    from gpuctl.errors import GpuctlError, UsageError
    from gpuctl.plan import PlanRequest, plan_inputs

    ctx = deploy_context(app, Timeouts(), quiet=False)
    service = services.get(ctx, name)
    if service.status not in ("running", "degraded"):
        raise UsageError(f"service '{name}' is {service.status}", f"'gpuctl status {name}' shows its state")
    try:
        with services.router_reach(ctx, service) as url:
            view: dict[str, bool] | None = {w.url: w.healthy for w in routing.workers(url)}
    except GpuctlError as exc:
        warn(app, f"the router of {name} does not answer ({exc.one_line()})")
        view = None
    dead = services.dead_members(ctx, service, view)
    for member in dead:
        warn(app, f"replica {member} died: taking it out of the router and down")
        services.remove_replica(ctx, service, member)
    service = services.forget_members(ctx, name, dead)
    alive = [d.name for d in services.members(ctx, service) if is_active(d)]
    wanted = count if count is not None else service.replicas
    # without --replace-failed (and no count) a dead replica is reported and the service runs short, degraded:
    # never silently dropped from what it should have
    target = wanted if count is not None or service.replace_failed else min(wanted, len(alive))
    if target < wanted:
        warn(app, f"{name} runs {len(alive)} of {wanted} replicas: the dead were not replaced (it was not made "
                  f"--replace-failed); 'gpuctl scale {name} {wanted}' adds new ones")
    if target < len(alive):
        for member in reversed(alive[target:]):
            info(app, f"removing {member}")
            services.remove_replica(ctx, service, member)
        services.forget_members(ctx, name, alive[target:])
    elif target > len(alive):
        request = PlanRequest.model_validate(service.request)
        inputs = plan_inputs(request, project_root=app.project_root, registry=app.registry, reporter=ctx.reporter)
        names = services.replica_names(name, service.next_index, target - len(alive))
        proposal = services.propose_replicas(ctx, request, inputs, names, spread=service.spread,
                                             allow_pickle=allow_pickle)
        confirm_replicas(app, name, proposal.replicas, router=_where(service), adding=True)
        from gpuctl.deploy.secrets import read_api_key

        key = read_api_key(ctx.state_dir, name)
        if key is None:
            raise UsageError(f"the API key of service '{name}' is missing from .gpuctl/secrets",
                             f"'gpuctl down {name}' and deploy it again")
        services.add_replicas(ctx, services.ServiceRequest(
            name=name, replicas=proposal.replicas, plan_request=request, router=_where(service),
            policy=service.router.policy if service.router else routing.DEFAULT_POLICY, spread=service.spread,
            replace_failed=service.replace_failed, allow_pickle=allow_pickle, secrets=proposal.secrets,
            manifest=proposal.manifest,
            on_replica=lambda d: info(app, f"{d.name} is healthy and behind the router")), key)
    service = services.update(ctx, name, replicas=wanted, status="running" if target == wanted else "degraded",
                              event="scaled", detail=f"{target} of {wanted}")
    render_ready(app, ctx, service)


def _where(service: object) -> str:
    router = getattr(service, "router", None)
    return "local" if router is None or router.host is None else str(router.host)
