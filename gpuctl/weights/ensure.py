"""The weights step of ``gpuctl up``: have the model's files in the host's cache, verified, before the engine starts.

1. The manifest (files, sizes, digests) of the model at its commit: read from the host's cache when
   gpuctl stored one there before (a pinned revision then needs no hub at all), else built from the
   hub's file list (:mod:`gpuctl.weights.hub`, :mod:`gpuctl.weights.selection`).
2. The fetcher runs on the host (:mod:`gpuctl.weights.remote`): it keeps what is there and verified,
   re-fetches what is corrupted, resumes partial files, and downloads the rest, reporting progress.
3. The engine then serves from that cache, mounted read-only, with ``HF_HUB_OFFLINE=1``
   (:func:`serve_from_cache`).

With a ``mirror`` (a provider's copy in the region, :mod:`gpuctl.weights.mirror`), the fetcher copies
what the mirror has from there and uploads what it fetched from the hub; gpuctl completes the mirror
after the run. The mirror only saves time: when it cannot be used, the hub serves everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from gpuctl.errors import GpuctlError
from gpuctl.events import NullReporter, ProgressUpdate, Reporter
from gpuctl.models.engine import HOST_CACHE_DIR, EngineSpec
from gpuctl.weights import fetcher
from gpuctl.weights.hub import hub_endpoint, repo_info
from gpuctl.weights.models import CacheReport, Manifest, fetch_job, report_from_done
from gpuctl.weights.preflight import is_commit, manifest_from_info
from gpuctl.weights.remote import Event, FetcherRun, fetcher_error, run_fetcher

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.shell import Shell
    from gpuctl.weights.mirror import MirrorJob, WeightsMirror

#: files downloaded at once (one connection each); a 70B model comes in about 30 shards of 5 GB
DEFAULT_WORKERS = 8
#: what the engine container gets once its weights are cached: no hub calls, and a writable place for
#: the code of trust_remote_code models (transformers puts it under HF_HOME, which is read-only now)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": "/tmp/hf-modules"}
ManifestSource = Literal["hub", "cache"]


def ensure_cached(
    docker: DockerEngine,
    repo: str,
    revision: str,
    *,
    image: str,
    cache_dir: str = HOST_CACHE_DIR,
    hf_token: str | None = None,
    allow_pickle: bool = False,
    reporter: Reporter | None = None,
    endpoint: str | None = None,
    workers: int = DEFAULT_WORKERS,
    manifest: Manifest | None = None,
    mirror: WeightsMirror | None = None,
    labels: Mapping[str, str] | None = None,
) -> CacheReport:
    """Download what is missing of ``repo`` at ``revision`` into ``cache_dir`` on the host, and verify it all.

    ``image`` (the engine's) runs the fetcher. ``manifest`` (from :mod:`gpuctl.weights.preflight`) spares
    the host a file list of its own. Raises UsageError (2) for pickle-only weights unless
    ``allow_pickle``, CredentialsError (6) for a gated repo without an accepted token, NotFoundError
    (3) for a missing repo or revision, HostError/ProviderError (4) when the download fails.
    ``mirror``: the provider's copy of the cache in the host's region, read before the hub and filled from it.
    ``labels`` mark the fetcher's container as the deployment's (:func:`gpuctl.host.labels.host_labels`).
    """
    reporter = reporter or NullReporter()
    endpoint = endpoint or hub_endpoint()
    start = time.monotonic()
    source: ManifestSource = "cache"
    if manifest is None:
        manifest, source = _manifest(docker.shell, repo, revision, cache_dir=cache_dir, token=hf_token,
                                     allow_pickle=allow_pickle, endpoint=endpoint, reporter=reporter)
    if manifest.format == "pickle":
        reporter.warn(f"{repo} has only pickled weights; loading them can run code (allowed by --allow-pickle)")
    job = fetch_job(endpoint, manifest, workers)
    planned = _plan_mirror(mirror, manifest, reporter) if mirror is not None else None
    if planned is not None:
        job["mirror"] = planned.model_dump(mode="json")
    with ExitStack() as progress:
        on_event = progress_renderer(reporter, progress, repo)
        run = run_fetcher(docker, "fetch", image=image, cache_dir=cache_dir, job=job, token=hf_token,
                          on_event=on_event, reporter=reporter, labels=labels)
    if mirror is not None and planned is not None:
        _finish_mirror(mirror, manifest, run, reporter)
    done = run.last("done")
    if run.exit_code != 0 or done is None:
        raise fetcher_error(run, repo, docker.shell.where, token_given=bool(hf_token))
    return report_from_done(done, manifest, revision=revision, where=docker.shell.where, cache_dir=cache_dir,
                            source=source, seconds=time.monotonic() - start)


def _plan_mirror(mirror: WeightsMirror, manifest: Manifest, reporter: Reporter) -> MirrorJob | None:
    """The mirror's URLs for the job; None (with a warning) when the mirror cannot be used now."""
    try:
        return mirror.plan(manifest)
    except GpuctlError as exc:
        reporter.warn(f"the weights mirror {mirror.where} cannot be used, the hub serves every file: {exc.one_line()}")
        return None


def _finish_mirror(mirror: WeightsMirror, manifest: Manifest, run: FetcherRun, reporter: Reporter) -> None:
    """Complete the fetcher's uploads (also after a failed run: what was uploaded is good); warn, never fail."""
    from gpuctl.weights.mirror import MirrorOutcome

    try:
        result = mirror.finish(manifest, MirrorOutcome.from_events(run.events))
    except GpuctlError as exc:
        reporter.warn(f"the weights mirror {mirror.where} was not updated: {exc.one_line()}")
        return
    if result.added:
        state = "complete" if result.complete else "partial"
        reporter.info(f"{manifest.repo}: {len(result.added)} files copied to {mirror.where} ({state} there)")


def _manifest(shell: Shell, repo: str, revision: str, *, cache_dir: str, token: str | None, allow_pickle: bool,
              endpoint: str, reporter: Reporter) -> tuple[Manifest, ManifestSource]:
    """The manifest stored on the host for this commit, else one built from the hub ('cache' or 'hub')."""

    def usable(manifest: Manifest | None) -> bool:
        return manifest is not None and (manifest.format == "safetensors" or allow_pickle)

    if is_commit(revision):
        stored = stored_manifest(shell, cache_dir, repo, revision)
        if usable(stored):
            assert stored is not None
            return stored.model_copy(update={"revision": revision}), "cache"
    with reporter.step(f"reading the file list of {repo}@{revision[:12]}"):
        info = repo_info(repo, revision, token=token, endpoint=endpoint)
        stored = stored_manifest(shell, cache_dir, repo, info.commit)
        if usable(stored):
            assert stored is not None
            return stored.model_copy(update={"revision": revision}), "hub"
        manifest = manifest_from_info(info, revision, token=token, allow_pickle=allow_pickle, endpoint=endpoint)
    return manifest, "hub"


def stored_manifest(shell: Shell, cache_dir: str, repo: str, commit: str) -> Manifest | None:
    """The manifest a fetcher stored on the host for ``commit``; None when there is none (or it is unreadable)."""
    path = fetcher.manifest_path(cache_dir, repo, commit)
    result = shell.run(["cat", path])
    if not result.ok:
        return None
    try:
        return Manifest.model_validate_json(result.stdout)
    except ValidationError:
        return None


def progress_renderer(reporter: Reporter, stack: ExitStack, repo: str) -> Callable[[Event], None]:
    """Turns fetcher events into reporter calls: a transfer from the 'plan' event on, warnings, notes."""
    update: list[ProgressUpdate] = []

    def on_event(event: Event) -> None:
        kind = event.get("e")
        if kind == "plan":
            if event["need"] > 0:
                update.append(stack.enter_context(reporter.transfer(f"downloading {repo}", event["need"])))
            else:
                reporter.info(f"{repo}: all {event['files']} files already cached and verified")
        elif kind == "progress" and update:
            update[0](event["done"])
        elif kind in ("corrupt", "retry", "mirror-corrupt", "mirror-failed"):
            reporter.warn(event["message"])
        elif kind == "info":
            reporter.info(event["message"])
        elif kind == "done":
            stack.close()

    return on_event


def serve_from_cache(spec: EngineSpec, *, pickle: bool = False) -> EngineSpec:
    """The engine spec for a host whose cache holds the weights: offline, the cache mounted read-only.

    The plan (``up --dry-run``) shows the spec as built; the read-only mount and offline mode apply
    only where gpuctl fetched the weights itself, which a container provider (RunPod) does not yet.
    """
    if pickle:
        from gpuctl.engines import allow_pickle_weights

        spec = allow_pickle_weights(spec)
    return spec.model_copy(update={"env": {**spec.env, **OFFLINE_ENV}, "cache_mount": f"{spec.cache_mount}:ro"})

