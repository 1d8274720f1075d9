"""``gpuctl weights``: the model weights cached on a GPU host (list, pre-fetch, verify, delete)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option, yes_option
from gpuctl.cli.output import Column, ConsoleReporter, format_bytes, print_json, print_rows
from gpuctl.errors import UsageError
from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.models.recipe import EngineName

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.models.recipe import EngineName
    from gpuctl.weights.models import CachedModel, VerifyResult
    from gpuctl.weights.provider_caches import ProviderCacheRow

F = TypeVar("F", bound=Callable[..., Any])


def host_options(func: F) -> F:
    """Where the cache is: ``--host`` (required), how to log in, which directory, which engine image runs the work."""
    options = [
        click.option("--host", metavar="USER@ADDR[:PORT]|local",
                     help="The machine whose cache to use (over SSH, honouring ~/.ssh/config), or this one."),
        click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="KEYFILE",
                     help="SSH private key (else the ssh agent, ~/.ssh/config and the project key)."),
        click.option("--accept-host-key", is_flag=True, help="Pin the machine's SSH key on first contact."),
        click.option("--cache-dir", default=HOST_CACHE_DIR, show_default=True, metavar="DIR",
                     help="The cache directory on the machine."),
        click.option("--engine", type=click.Choice(get_args(EngineName)), default=None,
                     help="Whose image runs the fetcher there (default: the project's engine, else vllm)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


to_option = click.option(
    "--to", "to", metavar="PROVIDER[:REGION]",
    help="A provider's weights cache in a region (Lambda filesystem, RunPod network volume, AWS S3 bucket).")


@click.group()
def weights() -> None:
    """Model weights cached next to the GPUs: fetched once, verified, reused by every later 'gpuctl up'.

    \b
    Caches: a directory on a machine (--host), or one per provider and region
    (--to PROVIDER[:REGION]), which 'gpuctl up' there creates and fills.
    Caches survive 'gpuctl down'; 'gpuctl weights rm' deletes them.
    MODEL is a recipe name, hf:ORG/NAME[@REVISION] or ORG/NAME.
    """


@weights.command("ls")
@host_options
@to_option
@json_option
@click.pass_obj
def ls(app: App, host: str | None, identity: Path | None, accept_host_key: bool, cache_dir: str, engine: str | None,
       to: str | None) -> None:
    """What is cached where: a host's models, sizes and revisions, or the providers' caches (default)."""
    if host is None:
        _list_provider_caches(app, to)
        return
    _one_place(host, to)
    from gpuctl.weights.manage import list_cached

    with _docker(app, host, identity, accept_host_key) as docker:
        rows = list_cached(docker, image=_image(app, engine), cache_dir=cache_dir, reporter=ConsoleReporter(app))
    print_rows(app, rows, LS_COLUMNS, empty=f"nothing is cached in {cache_dir} on {host}")


def _list_provider_caches(app: App, to: str | None) -> None:
    from gpuctl.weights.provider_caches import list_caches, parse_to

    only, region = parse_to(to) if to else (None, None)
    rows = list_caches(app.registry, only, region, reporter=ConsoleReporter(app))
    print_rows(app, rows, CACHE_COLUMNS, empty="no provider keeps a gpuctl weights cache yet ('gpuctl up' makes one)")


def _one_place(host: str | None, to: str | None) -> None:
    if host and to:
        raise UsageError("--host and --to name two places", "pass one of them")
    if not host and not to:
        raise UsageError("no cache named", "pass --host USER@ADDR|local or --to PROVIDER[:REGION]")


def _cached_models(row: ProviderCacheRow) -> str:
    return ", ".join(f"{m.repo}@{m.commit[:8]}" for m in row.models) or "-"


CACHE_COLUMNS = [
    Column("PROVIDER", "provider"),
    Column("REGION", "region"),
    Column("NAME", "name"),
    Column("KIND", "kind"),
    Column("SIZE", lambda r: f"{r.size_gb} GB" if r.size_gb else "-", "right"),
    Column("USED", lambda r: format_bytes(r.used_bytes) if r.used_bytes is not None else "-", "right"),
    Column("IN USE", lambda r: {True: "yes", False: "no", None: "-"}[r.in_use]),
    Column("MODELS (filled from here)", _cached_models),
]


def _state(row: CachedModel) -> str:
    if not row.managed:
        return "not gpuctl's"
    if row.partial_files:
        return f"partial ({row.partial_files} interrupted)"
    return "complete" if row.complete else "incomplete"


LS_COLUMNS = [
    Column("MODEL", "repo"),
    Column("SIZE", lambda r: format_bytes(r.size_bytes), "right"),
    Column("FILES", "files", "right"),
    Column("REVISIONS", lambda r: ", ".join([*(f"{k}={v[:8]}" for k, v in r.refs.items()),
                                             *(c[:8] for c in r.commits if c not in r.refs.values())])),
    Column("STATE", _state),
]


@weights.command("pull")
@click.argument("model")
@host_options
@to_option
@click.option("--gpu", default=None, metavar="GPU",
              help="With --to on a provider without CPU machines: the GPU of the machine that fills the cache.")
@click.option("--allow-pickle", is_flag=True, help="Also fetch a repo whose only weights are pickled (.bin/.pt).")
@yes_option
@quiet_option
@json_option
@click.pass_obj
def pull(app: App, model: str, host: str | None, identity: Path | None, accept_host_key: bool, cache_dir: str,
         engine: EngineName | None, to: str | None, gpu: str | None, allow_pickle: bool) -> None:
    """Fetch MODEL into a cache now, so a later 'gpuctl up' there starts without downloading.

    \b
    --to fills the provider's cache in REGION (default: where MODEL is cheapest to
    serve there). RunPod fills it from a CPU pod; Lambda and AWS from the cheapest
    machine that could serve MODEL, torn down when done. The price is shown first
    (-y skips the question).
    """
    _one_place(host, to)
    if to:
        from gpuctl.cli.weights_pull import pull_to_provider

        report = pull_to_provider(app, model, to, gpu=gpu, engine=engine, allow_pickle=allow_pickle)
    else:
        assert host is not None
        from gpuctl.credentials import credential_value
        from gpuctl.weights import ensure_cached
        from gpuctl.weights.refs import resolve_ref

        repo, revision = resolve_ref(model, app.project_root)
        with _docker(app, host, identity, accept_host_key) as docker:
            report = ensure_cached(docker, repo, revision, image=_image(app, engine), cache_dir=cache_dir,
                                   hf_token=credential_value("hf.token"), allow_pickle=allow_pickle,
                                   reporter=ConsoleReporter(app))
    if app.json:
        print_json(report.model_dump(mode="json"))
        return
    click.echo(f"{report.repo}@{report.commit[:12]}: {report.files} files, {format_bytes(report.total_bytes)} "
               f"cached in {report.cache_dir} on {report.where} (downloaded {format_bytes(report.downloaded_bytes)})")


@weights.command("verify")
@click.argument("model", required=False)
@host_options
@json_option
@click.pass_obj
def verify(app: App, model: str | None, host: str | None, identity: Path | None, accept_host_key: bool, cache_dir: str,
           engine: str | None) -> None:
    """Re-hash every cached file of MODEL (default: of every model); corrupted files are removed.

    Exits 8 when a file is missing or corrupted; the next 'gpuctl up' or 'weights pull' fetches it again.
    """
    from gpuctl.errors import HealthCheckError
    from gpuctl.weights.manage import verify_cached
    from gpuctl.weights.refs import resolve_ref

    _one_place(host, None)
    assert host is not None
    repo = resolve_ref(model, app.project_root)[0] if model else None
    with _docker(app, host, identity, accept_host_key) as docker:
        results = verify_cached(docker, repo, image=_image(app, engine), cache_dir=cache_dir,
                                reporter=ConsoleReporter(app))
    print_rows(app, results, VERIFY_COLUMNS, empty=f"gpuctl has cached nothing in {cache_dir} on {host}")
    broken = [r for r in results if not r.ok]
    if broken:
        raise HealthCheckError(f"{len(broken)} cached model(s) failed verification on {host}: "
                               + ", ".join(r.repo for r in broken),
                               f"'gpuctl weights pull MODEL --host {host}' fetches the missing files again")


def _verdict(row: VerifyResult) -> str:
    if row.ok:
        return "ok"
    parts = [f"{len(row.corrupt)} corrupted (removed)"] if row.corrupt else []
    return ", ".join([*parts, *([f"{len(row.missing)} missing"] if row.missing else [])])


VERIFY_COLUMNS = [
    Column("MODEL", "repo"),
    Column("COMMIT", lambda r: r.commit[:12]),
    Column("FILES", "files", "right"),
    Column("RESULT", _verdict),
]


@weights.command("rm")
@click.argument("model", required=False)
@host_options
@to_option
@yes_option
@json_option
@click.pass_obj
def rm(app: App, model: str | None, host: str | None, identity: Path | None, accept_host_key: bool, cache_dir: str,
       engine: str | None, to: str | None) -> None:
    """Delete MODEL's cached files from a host, or a provider's whole cache (--to; asks first, -y skips)."""
    from gpuctl.weights.manage import remove_cached
    from gpuctl.weights.refs import resolve_ref

    _one_place(host, to)
    if to:
        if model:
            raise UsageError("a provider's weights cache is deleted whole",
                             f"drop MODEL: 'gpuctl weights rm --to {to}'")
        _remove_provider_cache(app, to)
        return
    assert host is not None
    if not model:
        raise UsageError("which model?", f"'gpuctl weights ls --host {host}' lists them")
    repo = resolve_ref(model, app.project_root)[0]
    _confirm_delete(app, f"the cached weights of {repo} from {cache_dir} on {host}")
    with _docker(app, host, identity, accept_host_key) as docker:
        removed = remove_cached(docker, repo, image=_image(app, engine), cache_dir=cache_dir,
                                reporter=ConsoleReporter(app))
    if app.json:
        print_json(removed.model_dump(mode="json"))
    elif removed.existed:
        click.echo(f"removed {repo} from {cache_dir} on {removed.where} ({format_bytes(removed.freed_bytes)} freed)")
    else:
        click.echo(f"{repo} was not cached in {cache_dir} on {removed.where}: nothing to do")


def _confirm_delete(app: App, what: str) -> None:
    from gpuctl.cli.confirm import confirm_or_refuse

    confirm_or_refuse(app, f"Delete {what}?", hint="pass -y",
                      refused=f"not deleting {what} without a confirmation, and there is no terminal to ask on")


def _remove_provider_cache(app: App, to: str) -> None:
    from gpuctl.weights.ledger import forget_cache
    from gpuctl.weights.provider_caches import ProviderCacheRow, cache_provider, find_cache, parse_to

    name, region = parse_to(to)
    provider = cache_provider(app.registry, name)
    cache = find_cache(provider, region)
    row = ProviderCacheRow.of(cache)
    held = f" (holding {_cached_models(row)})" if row.models else ""
    _confirm_delete(app, f"{provider.display_name}'s weights cache {cache.name} in {cache.region}{held}")
    with ConsoleReporter(app).step(f"deleting {cache.name}"):
        provider.delete_weights_cache(cache)
    forget_cache(cache)
    if app.json:
        print_json(row.model_dump(mode="json"))
    else:
        click.echo(f"deleted {provider.display_name}'s weights cache {cache.name} ({cache.id}) in {cache.region}")


@contextmanager
def _docker(app: App, host: str, identity: Path | None, accept_host_key: bool) -> Iterator[DockerEngine]:
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target
    from gpuctl.weights.manage import docker_for

    target = parse_target(host)
    with opened(connect(target, app.state.dir, identity=identity, accept_host_key=accept_host_key)) as shell:
        yield docker_for(shell)


def _image(app: App, engine: str | None) -> str:
    from gpuctl.engines import engine_module

    return str(engine_module(engine or app.project.engine or "vllm").IMAGE)
