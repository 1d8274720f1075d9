"""A host's weights cache: list it, re-verify it, delete a model from it (``gpuctl weights ls|verify|rm``).

Listing only reads, so it runs the fetcher with the host's own ``python3`` when there is one (no
image pull just to look); verifying and removing change root-owned files, so they run in a
container of the engine image like a download does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.errors import NotFoundError, UsageError
from gpuctl.events import Reporter
from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.weights.models import CachedModel, RemovedModel, VerifyResult
from gpuctl.weights.remote import FETCHER_SOURCE, FetcherRun, fetcher_error, parse_event, run_fetcher

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.shell import Shell


def docker_for(shell: Shell) -> DockerEngine:
    """The host's docker, as the login user or else through ``sudo -n``; HostError (4) when neither answers."""
    from gpuctl.host.docker import docker_access

    return docker_access(shell)


def list_cached(docker: DockerEngine, *, image: str, cache_dir: str = HOST_CACHE_DIR,
                reporter: Reporter | None = None) -> list[CachedModel]:
    """Every model in the host's cache, gpuctl's (with a manifest) and those an engine left there."""
    shell = docker.shell
    direct = shell.run(["python3", "-", "ls", "--cache", cache_dir], input=FETCHER_SOURCE.read_bytes(), timeout=120)
    run = FetcherRun(exit_code=direct.exit_code, other_output=direct.stderr.splitlines()[-20:],
                     events=[e for e in map(parse_event, direct.stdout.splitlines()) if e is not None])
    if run.exit_code != 0 and not run.events:  # no python3 there (or one too old): the engine image has one
        run = run_fetcher(docker, "ls", image=image, cache_dir=cache_dir, reporter=reporter)
    if run.exit_code != 0:
        raise fetcher_error(run, "the cache", shell.where, token_given=False)
    return [CachedModel(repo=e["repo"], commits=e["commits"], refs=e["refs"], files=e["files"], size_bytes=e["size"],
                        complete=e["complete"], managed=e["managed"], partial_files=e["partial"], where=shell.where,
                        cache_dir=cache_dir) for e in run.all("repo")]


def verify_cached(docker: DockerEngine, repo: str | None, *, image: str, cache_dir: str = HOST_CACHE_DIR,
                  reporter: Reporter | None = None) -> list[VerifyResult]:
    """Re-hash every cached file of ``repo`` (None: of every model); corrupted files are removed."""
    run = run_fetcher(docker, "verify", image=image, cache_dir=cache_dir, repo=repo, reporter=reporter)
    results = [VerifyResult(repo=e["repo"], commit=e["commit"], files=e["files"], missing=e["missing"],
                            corrupt=e["corrupt"], where=docker.shell.where) for e in run.all("verified")]
    if run.exit_code != 0 and not (results and run.last("error") is None):
        raise fetcher_error(run, repo or "the cache", docker.shell.where, token_given=False)
    if repo is not None and not results:
        raise NotFoundError(f"gpuctl has not cached {repo} in {cache_dir} on {docker.shell.where}",
                            "'gpuctl weights ls' lists what is cached there")
    return results


def remove_cached(docker: DockerEngine, repo: str, *, image: str, cache_dir: str = HOST_CACHE_DIR,
                  reporter: Reporter | None = None) -> RemovedModel:
    """Delete ``repo``'s files, snapshots and gpuctl's records of it from the host's cache."""
    if not repo or "/" not in repo or ".." in repo:
        raise UsageError(f"'{repo}' is not a repo id", "use ORG/NAME, a recipe name or hf:ORG/NAME")
    run = run_fetcher(docker, "rm", image=image, cache_dir=cache_dir, repo=repo, reporter=reporter)
    removed = run.last("removed")
    if run.exit_code != 0 or removed is None:
        raise fetcher_error(run, repo, docker.shell.where, token_given=False)
    return RemovedModel(repo=repo, existed=removed["existed"], freed_bytes=removed["freed"], where=docker.shell.where)
