"""The weights check before anything is rented: which files a model needs, read from this machine.

``gpuctl up`` and ``gpuctl weights pull --to`` call :func:`model_manifest` before the price is
confirmed, so a pickle-only repo (exit 2), a gated repo without a token (6) or a missing repo or
revision (3) stop the command while it has cost nothing. The manifest also sizes the provider's
weights cache and is handed to the host, which then needs no file list of its own.

A pinned commit's manifest never changes, so it is kept under ``cache_dir()/manifests`` and a
later ``up`` of the same model does not contact the hub at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from gpuctl.events import NullReporter, Reporter
from gpuctl.fsutil import atomic_write
from gpuctl.paths import cache_dir
from gpuctl.weights.fetcher import repo_folder
from gpuctl.weights.hub import HubUnreachable, gated_error, hub_endpoint, read_file, repo_info
from gpuctl.weights.models import Manifest, RepoInfo
from gpuctl.weights.selection import build_manifest

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_commit(revision: str) -> bool:
    return bool(_COMMIT.match(revision))


def hub_manifest(repo: str, revision: str, *, token: str | None, allow_pickle: bool, endpoint: str) -> Manifest:
    """The files to cache for ``repo`` at ``revision``, from the hub (raises for gated, pickle-only, missing)."""
    info = repo_info(repo, revision, token=token, endpoint=endpoint)
    return manifest_from_info(info, revision, token=token, allow_pickle=allow_pickle, endpoint=endpoint)


def manifest_from_info(info: RepoInfo, revision: str, *, token: str | None, allow_pickle: bool,
                       endpoint: str) -> Manifest:
    """The manifest for a file list the hub gave (reads the weight index; a gated repo needs a token)."""
    if info.gated and not token:
        raise gated_error(info.repo, token_given=False)
    return build_manifest(info, revision, allow_pickle=allow_pickle,
                          read_index=lambda name: read_file(info.repo, info.commit, name, token=token,
                                                            endpoint=endpoint))


def model_manifest(repo: str, revision: str, *, token: str | None, allow_pickle: bool,
                   reporter: Reporter | None = None, endpoint: str | None = None) -> Manifest | None:
    """The manifest of ``repo`` at ``revision``: stored here for a pinned commit, else from the hub.

    Returns None (after a warning) when the hub cannot be reached from this machine: the host, which
    may have its own route to the hub or a copy of the manifest, then decides. Every answer the hub
    does give (gated, pickle-only, not found) is raised here, before anything is rented.
    """
    reporter = reporter or NullReporter()
    endpoint = endpoint or hub_endpoint()
    if is_commit(revision):
        stored = _read(_stored_path(repo, revision))
        if stored is not None and (stored.format == "safetensors" or allow_pickle):
            if stored.gated and not token:
                raise gated_error(repo, token_given=False)
            return stored.model_copy(update={"revision": revision})
    try:
        with reporter.step(f"reading the file list of {repo}@{revision[:12]}"):
            manifest = hub_manifest(repo, revision, token=token, allow_pickle=allow_pickle, endpoint=endpoint)
    except HubUnreachable as exc:
        reporter.warn(f"{exc.message}; the host will read the file list of {repo} itself")
        return None
    atomic_write(_stored_path(repo, manifest.commit), manifest.model_dump_json(indent=1), durable=False)
    return manifest


def _stored_path(repo: str, commit: str) -> Path:
    return cache_dir() / "manifests" / repo_folder(repo) / f"{commit}.json"


def _read(path: Path) -> Manifest | None:
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
