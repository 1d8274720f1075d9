"""The steps before anything is rented, one service for ``gpuctl up`` and ``gpuctl weights pull --to``.

:func:`propose` picks the offers to launch (best first; the rest are fallbacks for a capacity error),
checks the secrets they need, and reads the model's file list ahead, so a pickle-only, gated or
missing repo stops here having cost nothing. The summaries say what will be rented at what price;
the CLI shows one and asks (``gpuctl.cli.confirm.confirm_or_refuse``): nothing is launched without
that yes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuctl.deploy import naming
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.planning import candidate_plans, describe_offer
from gpuctl.errors import UsageError
from gpuctl.plan import DeployPlan, PlanInputs, PlanRequest

if TYPE_CHECKING:
    from gpuctl.providers.base import Provider
    from gpuctl.weights.models import Manifest


@dataclass
class Proposal:
    """What would be launched, and with what, before the user said yes."""

    name: str
    plans: list[DeployPlan]
    secrets: dict[str, str] = field(repr=False)
    manifest: Manifest | None
    hf_token: str | None = field(default=None, repr=False)

    @property
    def plan(self) -> DeployPlan:
        return self.plans[0]


def propose(ctx: DeployContext, request: PlanRequest, inputs: PlanInputs, *, name: str | None, limit: int,
            allow_pickle: bool, name_suffix: str | None = None) -> Proposal:
    """The plans for the ``limit`` best offers, the secrets they need and the model's manifest.

    ``name`` defaults to ``<model>-<gpu or name_suffix>-<4 hex>``. Raises before anything is rented:
    UsageError (2) for a gated model without a token or pickle-only weights, NotFoundError (3) for a
    missing repo, and the planning errors.
    """
    from gpuctl.credentials import credential_value
    from gpuctl.weights.preflight import model_manifest

    plans = candidate_plans(ctx, request, inputs, limit=limit)
    plan = plans[0]
    hf_token = credential_value("hf.token")
    secrets = required_secrets(plan, hf_token)
    manifest = model_manifest(plan.model.repo, plan.model.revision, token=hf_token, allow_pickle=allow_pickle,
                              reporter=ctx.reporter)
    return Proposal(name=name or naming.default_name(plan.model.name, name_suffix or plan.offer.gpu), plans=plans,
                    secrets=secrets, manifest=manifest, hf_token=hf_token)


def required_secrets(plan: DeployPlan, hf_token: str | None) -> dict[str, str]:
    """The secret values the engine needs before anything is launched (the API key is added later)."""
    from gpuctl.engines import HF_TOKEN_ENV

    values: dict[str, str] = {}
    if HF_TOKEN_ENV in plan.engine.secret_env:
        if not hf_token:
            raise UsageError(f"{plan.model.repo} is gated and no Hugging Face token is set",
                             "export HF_TOKEN=... or 'gpuctl config set hf.token VALUE' (and accept the licence)")
        values[HF_TOKEN_ENV] = hf_token
    return values


def deploy_summary(proposal: Proposal) -> str:
    """What ``gpuctl up`` shows before its question: the offer, its price, its limits and worst case, the fallbacks."""
    from gpuctl.limits import describe

    plan, name = proposal.plan, proposal.name
    offer = plan.offer
    if plan.limits is not None:
        limits = describe(plan.limits, offer.price_per_hour).replace("'gpuctl down'", f"'gpuctl down {name}'")
    else:
        limits = f"no limits; no bound: bills until 'gpuctl down {name}'"
    lines = [f"deploy {name}: {plan.model.name} on {describe_offer(offer)}, {limits}"]
    if len(proposal.plans) > 1:
        lines.append("  if it has no capacity, then: " + "; ".join(describe_offer(p.offer) for p in proposal.plans[1:]))
    return "\n".join(lines)


def fill_summary(proposal: Proposal, provider: Provider, *, seeds_itself: bool, ttl_seconds: int, size: str) -> str:
    """What ``weights pull --to`` shows before its question: where the cache is filled from, and its cost.

    ``size`` is the model's size as the CLI writes sizes ('' when unknown).
    """
    plan = proposal.plan
    offer = plan.offer
    size = f" ({size})" if size else ""
    if seeds_itself:
        how = f"from a CPU pod in {offer.region}, deleted when done"
    else:
        how = (f"from {describe_offer(offer)}, torn down when done (TTL {ttl_seconds // 3600}h: at most "
               f"${offer.price_per_hour * ttl_seconds / 3600:.2f})")
    return (f"fill {provider.display_name}'s weights cache in {offer.region} with {plan.model.repo}{size} {how}; "
            f"the cache is kept (and billed by size) until 'gpuctl weights rm --to {provider.name}:{offer.region}'")
