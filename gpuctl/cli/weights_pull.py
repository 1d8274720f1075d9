"""``gpuctl weights pull MODEL --to PROVIDER[:REGION]``: fill a provider's weights cache ahead of ``gpuctl up``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.app import App
from gpuctl.cli.confirm import confirm_or_refuse
from gpuctl.cli.output import format_bytes
from gpuctl.errors import UsageError
from gpuctl.weights.models import CacheReport

if TYPE_CHECKING:
    from gpuctl.models.recipe import EngineName

#: the machine that fills a cache is torn down when done; this bounds it should gpuctl be killed first
FILL_TTL_SECONDS = 3 * 3600


def pull_to_provider(app: App, model: str, to: str, *, gpu: str | None, engine: EngineName | None,
                     allow_pickle: bool) -> CacheReport:
    """Plan, show the price, confirm, then fill the cache (gpuctl.deploy.lifecycle.fill_cache)."""
    from gpuctl.catalog import resolve_gpu
    from gpuctl.cli.up import deploy_context
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.lifecycle import UpRequest, fill_cache
    from gpuctl.deploy.planning import MAX_OFFERS
    from gpuctl.deploy.proposal import fill_summary, propose
    from gpuctl.plan import PlanRequest, plan_inputs
    from gpuctl.providers.capabilities import Capability
    from gpuctl.weights.provider_caches import cache_provider, parse_to

    name, region = parse_to(to)
    provider = cache_provider(app.registry, name)
    status = provider.credentials()
    if not status.present:  # before any offer is looked at: the cache and its machine are rented with the key
        from gpuctl.errors import CredentialsError

        raise CredentialsError(f"{provider.display_name} has no credentials, so its weights cache cannot be filled",
                               status.hint or "'gpuctl providers' shows what it needs")
    request = PlanRequest(model=model, gpu=resolve_gpu(gpu) if gpu else None, providers=[name], region=region,
                          engine=engine or app.project.engine or "vllm", ttl_seconds=FILL_TTL_SECONDS)
    ctx = deploy_context(app, Timeouts(), quiet=False)
    inputs = plan_inputs(request, project_root=app.project_root, registry=app.registry, reporter=ctx.reporter)
    # only machines that can use a cache (RunPod: Secure Cloud) lead to one
    inputs = inputs.model_copy(update={"offers": [o for o in inputs.offers if provider.weights_cache_region(o)]})
    seeds_itself = provider.can(Capability.SEED_WEIGHTS)
    proposal = propose(ctx, request, inputs, name=None, limit=1 if seeds_itself else MAX_OFFERS,
                       allow_pickle=allow_pickle, name_suffix="weights")
    if proposal.manifest is None and seeds_itself:
        raise UsageError(f"the file list of {proposal.plan.model.repo} could not be read from here, so "
                         f"{provider.display_name}'s cache cannot be filled", "check the network or HF_ENDPOINT")
    size = format_bytes(proposal.manifest.total_bytes) if proposal.manifest else ""
    confirm_or_refuse(app, "Go ahead?", shown=fill_summary(proposal, provider, seeds_itself=seeds_itself,
                                                           ttl_seconds=FILL_TTL_SECONDS, size=size),
                      refused="not renting anything without a confirmation, and there is no terminal to ask on",
                      hint="pass -y to confirm the price shown above")
    return fill_cache(ctx, UpRequest(name=proposal.name, plans=proposal.plans, secrets=proposal.secrets,
                                     allow_pickle=allow_pickle, manifest=proposal.manifest))
