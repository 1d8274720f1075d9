"""The offers ``gpuctl up`` may launch, best first: the plan and its fallbacks for capacity errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpuctl.deploy.context import DeployContext
from gpuctl.errors import UsageError
from gpuctl.models.offer import Offer
from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest, build_plan, ranked_offers
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.coldstart import ColdStartRecord
    from gpuctl.models.phases import ColdStartPrediction
    from gpuctl.providers.base import Provider

#: offers tried in turn when a provider reports no capacity
MAX_OFFERS = 3


def candidate_plans(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs,
                    limit: int = MAX_OFFERS) -> list[DeployPlan]:
    """Plans for the ``limit`` best offers at providers that can deploy.

    An offer at a provider that runs the engine itself (its endpoint is reachable from anywhere)
    is always planned public, with an API key; and there is no machine to arm gpuctl's TTL watchdog on,
    so its plan says that only gpuctl enforces the TTL.
    """
    from gpuctl.deploy.coldstart import history

    ranked, _ = ranked_offers(inputs.recipe, inputs.offers, request, inputs.history)
    past = history()
    plans: list[DeployPlan] = []
    skipped: set[str] = set()
    for rank, (offer, _row) in enumerate(ranked):
        provider_cls = ctx.provider_class(offer.provider)
        if not provider_cls.can(Capability.LAUNCH):
            skipped.add(offer.provider)
            continue
        public = provider_cls.can(Capability.ENGINE_CONTAINER)
        planned = request.model_copy(update={"public": True}) if public else request
        plan = build_plan(planned, inputs.recipe, inputs.offers, hf_token_present=inputs.hf_token_present,
                          warnings=inputs.warnings, rank=rank, ttl_by_gpuctl=public, history=inputs.history)
        plans.append(plan.model_copy(update={"cold_start": forecast(plan, provider_cls, past)}))
        if len(plans) == limit:
            break
    if not plans:
        raise UsageError(f"{len(ranked)} offer(s) fit, but their providers ({', '.join(sorted(skipped))}) "
                         "cannot deploy in this version of gpuctl",
                         "deploy to a machine you have with --host user@addr, or pick another --provider")
    return plans


def forecast(plan: DeployPlan, provider: type[Provider], past: Sequence[ColdStartRecord]) -> ColdStartPrediction:
    """The cold start of ``plan`` as past ups on its provider (else stated assumptions) suggest."""
    from gpuctl.deploy.coldstart import predict

    kind = next((k for k in (Capability.SSH_MACHINE, Capability.ENGINE_CONTAINER, Capability.USER_HOST)
                 if provider.can(k)), Capability.SSH_MACHINE)
    offer = plan.offer
    return predict(provider=offer.provider, kind=kind, gpu=offer.gpu, engine=plan.engine.engine,
                   image=plan.engine.image, weights_bytes=plan.fit.weights_gb * offer.gpu_count * 1e9,
                   weights_basis="the weights' size in GPU memory, from the fit", price_per_hour=offer.price_per_hour,
                   past=past)


def describe_offer(offer: Offer) -> str:
    """'runpod 1 x L40S in US-KS-2 ($0.79/h)', or '1 x L40S at ubuntu@gpu-box ($0.00/h)' for a --host."""
    from gpuctl.providers.ssh import HostProvider

    if offer.provider == HostProvider.name:
        return f"{offer.gpu_count} x {offer.gpu} at {offer.instance_type} (${offer.price_per_hour:.2f}/h)"
    return f"{offer.provider} {offer.gpu_count} x {offer.gpu} in {offer.region} (${offer.price_per_hour:.2f}/h)"
