"""``gpuctl weights``: the model weights cached on a GPU host (list, pre-fetch, verify, delete)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option, yes_option
from gpuctl.cli.output import Column, ConsoleReporter, format_bytes, print_json, print_rows
from gpuctl.errors import UsageError
from gpuctl.models.engine import HOST_CACHE_DIR

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.weights.models import CachedModel, VerifyResult

F = TypeVar("F", bound=Callable[..., Any])


def host_options(func: F) -> F:
    """Where the cache is: ``--host`` (required), how to log in, which directory, which engine image runs the work."""
    options = [
        click.option("--host", required=True, metavar="USER@ADDR[:PORT]|local",
                     help="The machine whose cache to use (over SSH, honouring ~/.ssh/config), or this one."),
        click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="KEYFILE",
                     help="SSH private key (else the ssh agent, ~/.ssh/config and the project key)."),
        click.option("--accept-host-key", is_flag=True, help="Pin the machine's SSH key on first contact."),
        click.option("--cache-dir", default=HOST_CACHE_DIR, show_default=True, metavar="DIR",
                     help="The cache directory on the machine."),
        click.option("--engine", type=click.Choice(["vllm", "tgi"]), default=None,
                     help="Whose image runs the fetcher there (default: the project's engine, else vllm)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def weights() -> None:
    """Model weights cached on a GPU host: fetched once, verified, reused by every later 'gpuctl up'.

    \b
    The cache survives 'gpuctl down'; 'gpuctl weights rm' deletes a model from it.
    MODEL is a recipe name, hf:ORG/NAME[@REVISION] or ORG/NAME.
    """


@weights.command("ls")
@host_options
@json_option
@click.pass_obj
def ls(app: App, host: str, identity: Path | None, accept_host_key: bool, cache_dir: str, engine: str | None) -> None:
    """What the host's cache holds: models, sizes, revisions."""
    from gpuctl.weights.manage import list_cached

    with _docker(app, host, identity, accept_host_key) as docker:
        rows = list_cached(docker, image=_image(app, engine), cache_dir=cache_dir, reporter=ConsoleReporter(app))
    print_rows(app, rows, LS_COLUMNS, empty=f"nothing is cached in {cache_dir} on {host}")


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
@click.option("--allow-pickle", is_flag=True, help="Also fetch a repo whose only weights are pickled (.bin/.pt).")
@quiet_option
@json_option
@click.pass_obj
def pull(app: App, model: str, host: str, identity: Path | None, accept_host_key: bool, cache_dir: str,
         engine: str | None, allow_pickle: bool) -> None:
    """Fetch MODEL into the host's cache now, so a later 'gpuctl up' there starts without downloading."""
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
def verify(app: App, model: str | None, host: str, identity: Path | None, accept_host_key: bool, cache_dir: str,
           engine: str | None) -> None:
    """Re-hash every cached file of MODEL (default: of every model); corrupted files are removed.

    Exits 8 when a file is missing or corrupted; the next 'gpuctl up' or 'weights pull' fetches it again.
    """
    from gpuctl.errors import HealthCheckError
    from gpuctl.weights.manage import verify_cached
    from gpuctl.weights.refs import resolve_ref

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
@click.argument("model")
@host_options
@yes_option
@json_option
@click.pass_obj
def rm(app: App, model: str, host: str, identity: Path | None, accept_host_key: bool, cache_dir: str,
       engine: str | None) -> None:
    """Delete MODEL's cached files from the host (asks first; -y skips)."""
    from gpuctl.weights.manage import remove_cached
    from gpuctl.weights.refs import resolve_ref

    repo = resolve_ref(model, app.project_root)[0]
    if not app.yes:
        if not app.can_prompt:
            raise UsageError(f"not deleting {repo} from {host} without a confirmation, and there is no terminal "
                             "to ask on", "pass -y")
        click.confirm(f"Delete the cached weights of {repo} from {cache_dir} on {host}?", abort=True, err=True)
    with _docker(app, host, identity, accept_host_key) as docker:
        removed = remove_cached(docker, repo, image=_image(app, engine), cache_dir=cache_dir,
                                reporter=ConsoleReporter(app))
    if app.json:
        print_json(removed.model_dump(mode="json"))
    elif removed.existed:
        click.echo(f"removed {repo} from {cache_dir} on {removed.where} ({format_bytes(removed.freed_bytes)} freed)")
    else:
        click.echo(f"{repo} was not cached in {cache_dir} on {removed.where}: nothing to do")


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
