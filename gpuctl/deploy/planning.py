"""The offers ``gpuctl up`` may launch, best first: the plan and its fallbacks for capacity errors."""

from __future__ import annotations

from gpuctl.deploy.context import DeployContext
from gpuctl.errors import UsageError
from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest, build_plan, ranked_offers
from gpuctl.providers.base import Provider

#: offers tried in turn when a provider reports no capacity
MAX_OFFERS = 3


def can_launch(provider_cls: type[Provider]) -> bool:
    return provider_cls.launch is not Provider.launch


def candidate_plans(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs,
                    limit: int = MAX_OFFERS) -> list[DeployPlan]:
    """Plans for the ``limit`` best offers at providers that can deploy.

    An offer at a provider that runs the engine itself (its endpoint is reachable from anywhere)
    is always planned public, with an API key.
    """
    ranked, _ = ranked_offers(inputs.recipe, inputs.offers, request)
    plans: list[DeployPlan] = []
    skipped: set[str] = set()
    for rank, (offer, _row) in enumerate(ranked):
        provider_cls = ctx.provider_class(offer.provider)
        if not can_launch(provider_cls):
            skipped.add(offer.provider)
            continue
        planned = request.model_copy(update={"public": True}) if provider_cls.runs_engine else request
        plans.append(build_plan(planned, inputs.recipe, inputs.offers, hf_token_present=inputs.hf_token_present,
                                warnings=inputs.warnings, rank=rank))
        if len(plans) == limit:
            break
    if not plans:
        raise UsageError(f"{len(ranked)} offer(s) fit, but their providers ({', '.join(sorted(skipped))}) "
                         "cannot deploy in this version of gpuctl",
                         "deploy to a machine you have with --host user@addr, or pick another --provider")
    return plans
