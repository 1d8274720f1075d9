"""The CLI side of ``gpuctl up MODEL --nodes N``: plan at providers that place machines together, ask, deploy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.app import App
from gpuctl.cli.output import warn

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.models.deployment import Deployment
    from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest


def node_plans(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs) -> list[DeployPlan]:
    """The best offers for ``request.nodes`` machines at providers that can place them together, best first."""
    from gpuctl.deploy.nodes import node_plan
    from gpuctl.deploy.planning import MAX_OFFERS, candidate_plans
    from gpuctl.errors import UsageError
    from gpuctl.providers.capabilities import Capability

    _look_up_first(app, request, inputs)
    every = candidate_plans(ctx, request, inputs, limit=1_000)
    plans = [node_plan(p, request.nodes) for p in every
             if ctx.provider_class(p.offer.provider).can(Capability.MULTI_NODE)]
    if not plans:
        at = ", ".join(sorted({p.offer.provider for p in every}))
        raise UsageError(f"{len(every)} offer(s) fit on {request.nodes} nodes, but their providers ({at}) cannot place "
                         "machines together for one engine", "see 'gpuctl providers' (multi-node) and docs/scale.md")
    return plans[:MAX_OFFERS]


def _look_up_first(app: App, request: PlanRequest, inputs: PlanInputs) -> None:
    """Say so when one machine on offer serves the model: several add a network hop to every token."""
    from gpuctl.errors import GpuctlError
    from gpuctl.plan import ranked_offers

    try:
        ranked, _ = ranked_offers(inputs.recipe, inputs.offers, request.model_copy(update={"nodes": 1}))
    except GpuctlError:
        return
    offer = ranked[0][0]
    warn(app, f"look up before out: {offer.gpu_count} x {offer.gpu} in one machine ({offer.provider}, "
              f"${offer.price_per_hour:.2f}/h) serves {inputs.recipe.name}; {request.nodes} machines add a network "
              "hop between pipeline stages to every token")


def deploy_nodes(app: App, ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, name: str | None,
                 allow_pickle: bool, keep_on_failure: bool) -> Deployment:
    """Plan, show the price of every node, ask, deploy; the running deployment."""
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.deploy import naming
    from gpuctl.deploy.lifecycle import describe_offer
    from gpuctl.deploy.nodes import up_nodes
    from gpuctl.deploy.service import prepare
    from gpuctl.durations import format_duration

    plans = node_plans(app, ctx, request, inputs)
    plan, nodes = plans[0], request.nodes
    for note in plan.warnings:
        warn(app, note)
    name = naming.check_name(name or naming.default_name(plan.model.name, f"{nodes}n-{plan.offer.gpu}"))
    secrets, manifest = prepare(ctx, plan, allow_pickle=allow_pickle)
    total = plan.offer.price_per_hour * nodes
    ttl = (f"TTL {format_duration(plan.ttl_seconds)} on every node, at most ${plan.estimated_cost_usd:.2f} in total"
           if plan.ttl_seconds else f"no TTL: bills until 'gpuctl down {name}'")
    shown = (f"deploy {name}: {plan.model.name} on {nodes} nodes of {describe_offer(plan.offer)} each, "
             f"${total:.2f}/h in total, {ttl}\n  vLLM multi-node: pipeline parallel across the {nodes} nodes, "
             f"tensor parallel over each node's {plan.offer.gpu_count} GPUs")
    confirm_or_refuse(app, "Deploy?", shown=shown,
                      refused="not deploying without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the price shown above")
    return up_nodes(ctx, name=name, plans=plans, nodes=nodes, secrets=secrets, manifest=manifest,
                    allow_pickle=allow_pickle, keep_on_failure=keep_on_failure)
