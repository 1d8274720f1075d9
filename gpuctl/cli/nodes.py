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
    """The best offers for ``request.nodes`` machines at providers that can place them together, best first
    (``--dry-run``: nothing is read from the model's hub)."""
    from gpuctl.deploy.nodes import multi_node_plans
    from gpuctl.deploy.planning import candidate_plans

    _look_up_first(app, request, inputs)
    return multi_node_plans(ctx, candidate_plans(ctx, request, inputs, limit=1_000), request.nodes)


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
    """Plan (through ``up``'s proposal service), show the price of every node, ask, deploy; the running deployment."""
    from gpuctl.cli.confirm import confirm_or_refuse
    from gpuctl.deploy.nodes import nodes_summary, propose_nodes, up_nodes
    from gpuctl.deploy.request import UpRequest

    _look_up_first(app, request, inputs)
    proposal = propose_nodes(ctx, request, inputs, name=name, allow_pickle=allow_pickle)
    for note in proposal.plan.warnings:
        warn(app, note)
    confirm_or_refuse(app, "Deploy?", shown=nodes_summary(proposal, request.nodes),
                      refused="not deploying without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the price shown above")
    return up_nodes(ctx, UpRequest(name=proposal.name, plans=proposal.plans, secrets=proposal.secrets,
                                   manifest=proposal.manifest, allow_pickle=allow_pickle,
                                   keep_on_failure=keep_on_failure), request.nodes)
