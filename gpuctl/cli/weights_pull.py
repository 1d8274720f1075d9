"""``gpuctl weights pull MODEL --to PROVIDER[:REGION]``: fill a provider's weights cache ahead of ``gpuctl up``."""

from __future__ import annotations

from gpuctl.app import App
from gpuctl.cli.confirm import confirm_or_refuse
from gpuctl.cli.output import format_bytes
from gpuctl.errors import UsageError
from gpuctl.weights.models import CacheReport

#: the machine that fills a cache is torn down when done; this bounds it should gpuctl be killed first
FILL_TTL_SECONDS = 3 * 3600


def pull_to_provider(app: App, model: str, to: str, *, gpu: str | None, engine: str | None,
                     allow_pickle: bool) -> CacheReport:
    """Plan, show the price, confirm, then fill the cache (gpuctl.deploy.lifecycle.fill_cache)."""
    from gpuctl.catalog import resolve_gpu
    from gpuctl.cli.up import deploy_context
    from gpuctl.credentials import credential_value
    from gpuctl.deploy import naming
    from gpuctl.deploy.context import Timeouts
    from gpuctl.deploy.lifecycle import UpRequest, fill_cache, required_secrets
    from gpuctl.deploy.planning import MAX_OFFERS, candidate_plans
    from gpuctl.plan import PlanRequest, plan_inputs
    from gpuctl.providers.capabilities import Capability
    from gpuctl.weights.preflight import model_manifest
    from gpuctl.weights.provider_caches import cache_provider, parse_to

    name, region = parse_to(to)
    provider = cache_provider(app.registry, name)
    request = PlanRequest(model=model, gpu=resolve_gpu(gpu) if gpu else None, providers=[name], region=region,
                          engine=engine or app.project.engine or "vllm", ttl_seconds=FILL_TTL_SECONDS)
    ctx = deploy_context(app, Timeouts(), quiet=False)
    inputs = plan_inputs(request, project_root=app.project_root, registry=app.registry, reporter=ctx.reporter)
    # only machines that can use a cache (RunPod: Secure Cloud) lead to one
    inputs = inputs.model_copy(update={"offers": [o for o in inputs.offers if provider.weights_cache_region(o)]})
    seeds_itself = provider.can(Capability.SEED_WEIGHTS)
    plans = candidate_plans(ctx, request, inputs, limit=1 if seeds_itself else MAX_OFFERS)
    plan = plans[0]
    hf_token = credential_value("hf.token")
    secrets = required_secrets(plan, hf_token)
    manifest = model_manifest(plan.model.repo, plan.model.revision, token=hf_token, allow_pickle=allow_pickle,
                              reporter=ctx.reporter)
    if manifest is None and seeds_itself:
        raise UsageError(f"the file list of {plan.model.repo} could not be read from here, so "
                         f"{provider.display_name}'s cache cannot be filled", "check the network or HF_ENDPOINT")
    size = f" ({format_bytes(manifest.total_bytes)})" if manifest else ""
    offer = plan.offer
    if seeds_itself:
        how = f"from a CPU pod in {offer.region}, deleted when done"
    else:
        from gpuctl.deploy.lifecycle import describe_offer

        how = (f"from {describe_offer(offer)}, torn down when done (TTL 3h: at most "
               f"${offer.price_per_hour * FILL_TTL_SECONDS / 3600:.2f})")
    confirm_or_refuse(app, "Go ahead?", shown=(
        f"fill {provider.display_name}'s weights cache in {offer.region} with {plan.model.repo}{size} {how}; "
        f"the cache is kept (and billed by size) until 'gpuctl weights rm --to {name}:{offer.region}'"),
        refused="not renting anything without a confirmation, and there is no terminal to ask on",
        hint="pass -y to confirm the price shown above")
    run_name = naming.default_name(plan.model.name, "weights")
    return fill_cache(ctx, UpRequest(name=run_name, plans=plans, secrets=secrets, allow_pickle=allow_pickle,
                                     manifest=manifest))

