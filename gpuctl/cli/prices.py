"""``gpuctl prices``: GPU offers across providers, cheapest per GPU-hour first (or per token, ``--for MODEL``)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import click

from gpuctl.app import App
from gpuctl.cli.estimates import ESTIMATE_COLUMNS, bench_history, load_options, serving
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import Column, ConsoleReporter, dump, info, print_json, print_rows, warn
from gpuctl.durations import format_duration, parse_duration
from gpuctl.errors import ConfigError, NoCapacityError, UsageError
from gpuctl.events import NullReporter
from gpuctl.models.recipe import EngineName, QuantMethod

if TYPE_CHECKING:
    from gpuctl.engines import ImageFacts
    from gpuctl.models.offer import Offer
    from gpuctl.perf.cost import Slo
    from gpuctl.perf.offers import EstimatedOffer
    from gpuctl.pricing import ProviderOutcome, SortKey


class Seconds(click.ParamType):
    """A number of seconds (``2.5``) or a duration (``5m``, ``1h``)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = float(value)
        except ValueError:
            return float(parse_duration(value))
        if seconds < 0:
            self.fail(f"'{value}' is negative", param, ctx)
        return seconds


def _names(values: tuple[str, ...]) -> list[str] | None:
    """Repeated and comma-separated values as one list; None when the option was not given."""
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return names or None


def _source(offer: Offer, now: datetime) -> str:
    """Snapshot rows show the date observed; live and cached rows the age of the answer."""
    if offer.source == "snapshot":
        return f"snapshot {offer.as_of.date()}"
    return f"{offer.source} {format_duration(max(0.0, (now - offer.as_of).total_seconds()))}"


def _market(offer: Offer) -> str:
    return " ".join(part for part in (offer.provider, offer.tier, "spot" if offer.spot else None) if part)


def _gpu(offer: Offer, unrunnable: set[str]) -> str:
    """The GPU, and the machine's architecture unless x86_64 (``no image``: the engine's has no build for it)."""
    from gpuctl.catalog import offer_arch

    arch = offer_arch(offer)
    if offer.id in unrunnable:
        return f"{offer.gpu} ({arch}, no image)"
    return offer.gpu if arch == "x86_64" else f"{offer.gpu} ({arch})"


def _columns(now: datetime, unrunnable: set[str]) -> list[Column]:
    return [
        Column("PROVIDER", _market),
        Column("GPU", lambda o: _gpu(o, unrunnable)),
        Column("GPUS", "gpu_count", "right"),
        Column("VRAM", lambda o: f"{o.vram_gb:g} GB", "right"),
        Column("REGION", "region"),
        Column("$/GPU-HR", lambda o: f"{o.price_per_gpu_hour:.3f}", "right"),
        Column("$/HR", lambda o: f"{o.price_per_hour:.3f}", "right"),
        Column("AVAILABILITY", "availability"),
        Column("SOURCE", lambda o: _source(o, now)),
    ]


def _config_seconds(app: App, key: str, default: float) -> float:
    raw = app.config.load().get(key)
    if raw is None:
        return default
    try:
        return Seconds().convert(raw, None, None)
    except (click.BadParameter, UsageError, ValueError):
        raise ConfigError(f"{app.config.path}: '{key}' must be a number of seconds, not '{raw}'") from None


#: with --for, the estimate's figures as CSV columns (the --json rows nest them under "estimate")
_CSV_ESTIMATE = ("concurrency", "output_tokens_per_s", "ttft_ms", "itl_ms", "basis")


def _print_csv(offers: list[Offer], estimated: bool = False) -> None:
    """The ``--json`` rows as CSV, the same keys as header (in the same order); with ``estimated`` the
    estimate's figures flattened, then usd_per_1m_output_tokens and meets_slo."""
    import csv
    import io

    from gpuctl.models.offer import Offer

    extra = [*_CSV_ESTIMATE, "usd_per_1m_output_tokens", "meets_slo"] if estimated else []
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*Offer.model_fields, *Offer.model_computed_fields, *extra],
                            lineterminator="\n")
    writer.writeheader()
    for row in dump(offers):
        found = row.pop("estimate", None) or {}
        if estimated:
            row.update({key: found.get(key) if key != "concurrency" else (found.get("inputs") or {}).get(key)
                        for key in _CSV_ESTIMATE})
        writer.writerow(row)
    click.echo(text.getvalue(), nl=False)


@click.command("prices", epilog="""\b
Rows come from the provider's API ('live'), from the cache of an answer younger than
--max-age ('cache'), or, for a provider without credentials or one that failed, from
gpuctl's dated price snapshot ('snapshot', with its date). AWS reports no stock, so its
offers show availability 'unknown'.""")
@click.option("--gpu", "gpus", multiple=True, metavar="GPU",
              help="GPU name or alias, e.g. l40s, h100-sxm; a family (h100) means each of its GPUs "
                   "(repeat or comma-separate).")
@click.option("--provider", "providers", multiple=True, metavar="NAME",
              help="Only these providers (repeat or comma-separate).")
@click.option("--region", "regions", multiple=True, metavar="REGION",
              help="Only these regions (repeat or comma-separate); AWS asks these instead of its default.")
@click.option("--min-vram", type=click.FloatRange(min=0), metavar="GB", help="At least GB of memory per GPU.")
@click.option("--max-price", type=click.FloatRange(min=0), metavar="USD",
              help="At most USD per GPU-hour.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Exactly N GPUs per instance.")
@click.option("--for", "model", metavar="MODEL",
              help="Only offers that can serve MODEL (recipe or hf:ORG/NAME) at its default context ('gpuctl fit'), "
                   "with the estimated tokens/s and $ per 1M output tokens of each.")
@click.option("--image", metavar="IMAGE",
              help="With --for: the image you will deploy instead of the engine's own; offers on machines the "
                   "engine's image has no build for (arm64) are then listed too.")
@click.option("--spot/--on-demand", default=False, help="Spot (interruptible) offers instead of on-demand ones.")
@click.option("--available-only", is_flag=True, help="Only offers reported in stock (drops 'unknown').")
@click.option("--all", "include_all", is_flag=True, help="Include sold-out offers.")
@click.option("--sort", type=click.Choice(["price", "vram", "provider", "cost-per-token"]), default="price",
              show_default=True, help="Ranking: price per GPU-hour, memory per GPU (largest first), provider, or "
                                      "estimated $ per 1M output tokens (with --for).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show the first N offers.")
@click.option("--refresh", is_flag=True, help="Ask the providers again instead of using cached answers.")
@click.option("--max-age", type=Seconds(), metavar="SECONDS",
              help="Use cached answers up to this old, e.g. 300 or 5m (config prices.max_age; default 5m).")
@click.option("--timeout", type=Seconds(), metavar="SECONDS",
              help="Seconds each provider may take (config prices.timeout; default 10).")
@click.option("--csv", "csv_output", is_flag=True, help="Print CSV on stdout (the --json keys as header).")
@click.option("-v", "--verbose", "verbose", is_flag=True,
              help="Also say where each provider's rows come from and which entries of its answer were skipped, "
                   "and why (with --json: an object with 'offers' and 'providers').")
@click.option("--engine", type=click.Choice(get_args(EngineName)), default=None,
              help="With --for: the engine the estimates are for (default: vllm, or the project's).")
@click.option("--quantization", type=click.Choice(get_args(QuantMethod)), default=None,
              help="With --for: serve quantized (as 'gpuctl up --quantization').")
@load_options
@json_option
@quiet_option
@click.pass_obj
def prices(app: App, gpus: tuple[str, ...], providers: tuple[str, ...], regions: tuple[str, ...],
           min_vram: float | None, max_price: float | None, count: int | None, spot: bool,
           available_only: bool, include_all: bool, sort: str, limit: int | None, refresh: bool,
           max_age: float | None, timeout: float | None, csv_output: bool, model: str | None, image: str | None,
           verbose: bool, engine: str | None, quantization: str | None, input_len: int, output_len: int,
           concurrency: int | Literal["max"] | None, slo: Slo | None) -> None:
    """GPU offers across providers, cheapest per GPU-hour first.

    Works without any credentials: providers you have no key for show dated snapshot prices.
    With -q, print only the id of the first offer (the cheapest unless --sort says otherwise).
    With --for MODEL, each offer that can serve it carries the performance model's estimate
    (tokens/s, TTFT, ITL at --input-len, --output-len and --concurrency; corrected by this
    project's benches where it has some) and $ per 1M output tokens; --sort cost-per-token ranks
    by it, --slo drops offers whose estimate misses the targets. See docs/cost-per-token.md.
    """
    from gpuctl.catalog import resolve_gpus
    from gpuctl.models.offer import OfferQuery
    from gpuctl.pricing import DEFAULT_MAX_AGE, DEFAULT_TIMEOUT, OfferFilters, collect_offers, filter_and_sort

    if csv_output and app.json:
        raise UsageError("--csv and --json are exclusive", "pick one output format")
    if available_only and include_all:
        raise UsageError("--available-only and --all are exclusive", "--all adds sold-out offers; drop one")
    if timeout == 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if image and not model:
        raise UsageError("--image only applies with --for MODEL", "add --for MODEL, or drop --image")
    per_token = {"--sort cost-per-token": sort == "cost-per-token", "--slo": slo is not None,
                 "--concurrency": concurrency is not None, "--engine": engine is not None,
                 "--quantization": quantization is not None}
    if not model and any(per_token.values()):
        given = ", ".join(name for name, used in per_token.items() if used)
        raise UsageError(f"{given} estimate(s) serving a model: add --for MODEL", "e.g. --for llama-3.1-8b")
    if model:
        from gpuctl.recipes import resolve_model

        recipe = resolve_model(model, app.project_root)  # an unknown model fails before any provider is asked
        wanted = serving(app, engine=engine, quantization=quantization, input_len=input_len,
                         output_len=output_len, concurrency=concurrency, slo=slo)
    facts = _engine_image(wanted.engine if model else None, image)
    gpu_names = _names(gpus)
    query = OfferQuery(
        gpus=resolve_gpus(gpu_names) if gpu_names else None,
        regions=_names(regions), gpu_count=count, spot=spot, include_unavailable=include_all,
        min_cuda_version=facts.cuda if facts else None,
    )
    filters = OfferFilters(min_vram_gb=min_vram, max_price_per_gpu_hour=max_price, available_only=available_only,
                           sort=cast("SortKey", "price" if model else sort), limit=None if model else limit)
    provider_names = _names(providers)
    result = collect_offers(
        query, providers=[name.lower() for name in provider_names] if provider_names else None,
        refresh=refresh,
        max_age=max_age if max_age is not None else _config_seconds(app, "prices.max_age", DEFAULT_MAX_AGE),
        timeout=timeout or _config_seconds(app, "prices.timeout", DEFAULT_TIMEOUT),
        registry=app.registry,
        reporter=ConsoleReporter(app) if sys.stderr.isatty() else NullReporter(),
    )
    for line in result.warnings:
        warn(app, line)
    keyless = [name for name, outcome in result.sources.items() if outcome.status == "no-credentials"]
    if keyless:
        info(app, f"no credentials for {', '.join(keyless)}: showing dated snapshot prices "
                  "('gpuctl providers' shows how to add them)")
    candidates = result.offers
    unrunnable: set[str] = set()
    if model:
        from gpuctl.fit import FitSettings, fitting_offers

        candidates = fitting_offers(recipe, candidates, settings=FitSettings(
            engine=wanted.engine, quantization=wanted.quantization))  # type: ignore[arg-type]
    if facts is not None:
        candidates, unrunnable = _by_architecture(app, candidates, facts, show=include_all)
    offers: list[Any] = filter_and_sort(candidates, filters)
    if model:
        offers = _estimated(app, recipe, wanted, offers, sort, limit)
    if csv_output:
        _print_csv(offers, estimated=bool(model))
    elif app.quiet and not app.json:
        if not offers:
            raise NoCapacityError("no offer matches these filters", "relax the filters, or add --all")
        click.echo(offers[0].id)
    elif app.json and verbose:
        print_json({"offers": dump(offers),
                    "providers": {name: o.model_dump(mode="json") for name, o in result.sources.items()}})
    else:
        columns = _columns(datetime.now(timezone.utc), unrunnable)
        if model:
            columns[-2:-2] = ESTIMATE_COLUMNS
            info(app, f"estimates: {wanted.describe()} ('gpuctl fit {recipe.name}' shows the memory)")
        print_rows(app, offers, columns,
                   empty="no offer matches these filters (relax them, or add --all for sold-out offers)")
    if verbose and not app.json:
        for outcome in result.sources.values():
            for line in _outcome_lines(outcome):
                info(app, line)


def _engine_image(engine: str | None, image: str | None) -> ImageFacts | None:
    """With --for and the engine's own image (not --image): what that image needs of a machine."""
    if engine is None or image:
        return None
    from gpuctl.engines import image_facts

    return image_facts(engine)  # the engine --for fits the model with


def _by_architecture(app: App, offers: list[Offer], facts: ImageFacts, *, show: bool) -> tuple[list[Offer], set[str]]:
    """The offers whose machine the image runs on (``show``: all, with the ids of the others to mark)."""
    from gpuctl.catalog import offer_arch

    foreign = [o for o in offers if offer_arch(o) not in facts.archs]
    if not foreign:
        return offers, set()
    archs = "/".join(sorted({offer_arch(o) for o in foreign}))
    why = f"{facts.image} has no {archs} build; 'gpuctl up' picks them only with --image naming one"
    if show:
        info(app, f"offers marked 'no image' run on {archs} machines: {why}")
        return offers, {o.id for o in foreign}
    info(app, f"{len(foreign)} offer(s) on {archs} machines not shown: {why} (--all shows them)")
    return [o for o in offers if o not in foreign], set()


def _outcome_lines(outcome: ProviderOutcome) -> list[str]:
    """How one provider's rows were obtained, and the entries of its answer it skipped, by reason."""
    how = {"live": f"live answer in {outcome.seconds:g}s" if outcome.seconds is not None else "live answer",
           "cache": "cached answer", "no-credentials": "no credentials, snapshot", "failed": "failed, snapshot",
           "timed-out": "timed out, snapshot"}[outcome.status]
    total = sum(s.count for s in outcome.skipped)
    head = f"{outcome.provider}: {how}, {outcome.offers} offer(s)"
    if outcome.status in ("live", "cache"):
        head += f", {total} entr{'y' if total == 1 else 'ies'} skipped" + (":" if total else "")
    lines = [head]
    for skipped in outcome.skipped:
        more = f", +{skipped.count - len(skipped.entries)} more" if skipped.count > len(skipped.entries) else ""
        lines.append(f"  {skipped.count} {skipped.reason} ({', '.join(skipped.entries)}{more})")
    return lines


def _estimated(app: App, recipe: Any, wanted: Any, offers: list[Offer], sort: str,
               limit: int | None) -> list[EstimatedOffer]:
    """The offers with their estimates, the ones missing --slo dropped, ranked by --sort and cut to --limit."""
    from gpuctl.perf.offers import Estimator, token_cost_key
    from gpuctl.pricing import OfferFilters, filter_and_sort

    estimator = Estimator(recipe, wanted, bench_history(app))
    rows = [estimator.offer(offer) for offer in offers]
    if wanted.slo is not None:
        missing = sum(row.meets_slo is False for row in rows)
        rows = [row for row in rows if row.meets_slo is not False]
        if missing:
            info(app, f"{missing} offer(s) dropped: their estimate misses {wanted.slo.describe()}")
    if sort == "cost-per-token":
        rows.sort(key=token_cost_key)
    else:
        order = {offer.id: i for i, offer in enumerate(filter_and_sort(rows, OfferFilters(sort=cast("SortKey", sort))))}
        rows.sort(key=lambda row: order[row.id])
    return rows[:limit] if limit else rows
