"""What crosses the weights boundary: the hub's file list, a manifest, and what the cache holds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

WeightFormat = Literal["safetensors", "pickle"]
DigestAlgo = Literal["sha256", "git-blob-sha1"]


class HubFile(BaseModel):
    """One file of a repo at a commit, as the hub's API lists it (``siblings`` with ``blobs=true``)."""

    name: str
    size: int
    blob_id: str = Field(description="git blob id (for an LFS file: of its pointer)")
    lfs_sha256: str | None = Field(default=None, description="sha256 of the content, for files stored in LFS")

    def entry(self) -> WeightFile:
        """The file as the fetcher handles it: LFS files are checked by sha256, git files by blob id."""
        if self.lfs_sha256:
            return WeightFile(name=self.name, size=self.size, algo="sha256", digest=self.lfs_sha256)
        return WeightFile(name=self.name, size=self.size, algo="git-blob-sha1", digest=self.blob_id)


class RepoInfo(BaseModel):
    repo: str
    commit: str
    gated: bool
    files: list[HubFile]


class WeightFile(BaseModel):
    """A file to have in the cache: its blob is named by ``digest``, which also verifies it."""

    name: str
    size: int = Field(ge=0)
    algo: DigestAlgo
    digest: str


class Manifest(BaseModel):
    """The files of one model at one commit that gpuctl caches; stored next to the cache on the host."""

    repo: str
    revision: str = Field(description="what was asked for (a branch or a commit)")
    commit: str
    format: WeightFormat
    gated: bool
    files: list[WeightFile]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class CacheReport(BaseModel):
    """What ``ensure_cached`` did: ``downloaded_bytes`` is 0 when every file was already cached."""

    repo: str
    revision: str
    commit: str
    format: WeightFormat
    where: str
    cache_dir: str
    files: int
    total_bytes: int
    downloaded_bytes: int
    reused_bytes: int
    refetched: list[str] = Field(default_factory=list, description="files found corrupted and fetched again")
    resumed: list[str] = Field(default_factory=list, description="files whose interrupted download was resumed")
    manifest_source: Literal["hub", "cache"] = Field(description="cache: the hub was not contacted at all")
    seconds: float
    mirror_bytes: int = Field(default=0, description="of downloaded_bytes, those copied from the provider's mirror")


def report_from_done(done: dict[str, Any], manifest: Manifest, *, revision: str, where: str, cache_dir: str,
                     source: Literal["hub", "cache"], seconds: float) -> CacheReport:
    """The CacheReport of a fetcher run from its ``done`` event (``gpuctl.weights.fetcher``)."""
    return CacheReport(
        repo=manifest.repo, revision=revision, commit=manifest.commit, format=manifest.format, where=where,
        cache_dir=cache_dir, files=len(manifest.files), total_bytes=done["total"],
        downloaded_bytes=done["downloaded"], reused_bytes=done["reused"], refetched=done["refetched"],
        resumed=done["resumed"], manifest_source=source, seconds=round(seconds, 3),
        mirror_bytes=done.get("from_mirror", 0),
    )


def fetch_job(endpoint: str, manifest: Manifest, workers: int) -> dict[str, Any]:
    """The job ``fetcher.py fetch --job`` reads: where to download from, what, and how many files at once."""
    return {"endpoint": endpoint, "manifest": manifest.model_dump(mode="json"), "workers": workers}


class CachedModel(BaseModel):
    """One repo in a host's cache (``gpuctl weights ls``)."""

    repo: str
    commits: list[str]
    refs: dict[str, str] = Field(default_factory=dict, description="branch -> commit")
    files: int
    size_bytes: int
    complete: bool = Field(description="every file gpuctl's manifests list is present with its size")
    managed: bool = Field(description="fetched by gpuctl (with a manifest); false: left by an engine")
    partial_files: int = Field(default=0, description="interrupted downloads waiting to be resumed")
    where: str
    cache_dir: str


class VerifyResult(BaseModel):
    """One model's files re-hashed (``gpuctl weights verify``); corrupted blobs were removed."""

    repo: str
    commit: str
    files: int
    missing: list[str] = Field(default_factory=list)
    corrupt: list[str] = Field(default_factory=list)
    where: str

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


class RemovedModel(BaseModel):
    repo: str
    existed: bool
    freed_bytes: int
    where: str


class SeedRequest(BaseModel):
    """Fill a provider's weights cache with one model, where gpuctl cannot reach a machine itself (RunPod).

    The provider runs the fetcher next to the cache (``gpuctl.weights.fetcher``, ``fetch`` with a job of
    ``endpoint``, ``manifest`` and ``workers``) and reports what it did.
    """

    name: str = Field(description="the deployment (or pull) it is for; names what the provider starts")
    manifest: Manifest
    endpoint: str = Field(description="the Hugging Face hub the fetcher downloads from")
    tags: dict[str, str] = Field(default_factory=dict, description="gpuctl's tags, set on everything started")
    idempotency_token: str = Field(max_length=64)
    workers: int = Field(default=8, ge=1)
    hf_token: str | None = Field(default=None, exclude=True, repr=False)
