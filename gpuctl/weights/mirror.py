"""A provider's copy of the weights in a region (AWS: an S3 bucket), read and filled by the fetcher through URLs.

gpuctl holds the provider credentials, the machine does not: before the fetcher runs, the mirror says
which blobs it already has (time-limited GET URLs, copied with the fetcher's own resume and verify
code) and where the others go once verified (PUT URLs; multipart for large files). After the run,
gpuctl completes what the fetcher uploaded and writes the model's manifest last, so a model whose
manifest is in the mirror is complete there.

The URLs are credentials for as long as they last: they travel only in the job file (0600, mounted
read-only) and never appear in an event, a log line or the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from gpuctl.weights.models import Manifest
    from gpuctl.weights.remote import Event


class BlobUpload(BaseModel):
    """Where the fetcher puts one verified blob: one PUT to ``url``, or ``parts`` of ``part_size`` bytes each."""

    url: str | None = Field(default=None, repr=False)
    part_size: int | None = Field(default=None, gt=0)
    parts: list[str] = Field(default_factory=list, repr=False, description="one PUT URL per part, in order")


class MirrorJob(BaseModel):
    """The mirror's part of a fetcher job, keyed by blob digest (the ``mirror`` key of the job)."""

    sources: dict[str, str] = Field(default_factory=dict, repr=False, description="digest -> GET URL")
    uploads: dict[str, BlobUpload] = Field(default_factory=dict, description="digest -> where it goes")


class MirrorOutcome(BaseModel):
    """What the fetcher reported about the mirror: uploads done (with part ETags), copies that failed their digest."""

    uploaded: dict[str, list[str]] = Field(default_factory=dict, description="digest -> ETags of its parts")
    corrupt: list[str] = Field(default_factory=list, description="digests whose mirror copy did not verify")
    failed: list[str] = Field(default_factory=list, description="digests whose upload failed")
    from_mirror_bytes: int = 0

    @classmethod
    def from_events(cls, events: list[Event]) -> MirrorOutcome:
        done = next((e for e in reversed(events) if e.get("e") == "done"), {})
        return cls(uploaded={e["digest"]: list(e.get("parts") or []) for e in events if e.get("e") == "uploaded"},
                   corrupt=sorted({e["digest"] for e in events if e.get("e") == "mirror-corrupt"}),
                   failed=sorted({e["digest"] for e in events if e.get("e") == "mirror-failed"}),
                   from_mirror_bytes=int(done.get("from_mirror", 0)))


class MirrorResult(BaseModel):
    """What ``finish`` made of the run: blobs added, copies dropped, and whether the whole model is there now."""

    added: list[str] = Field(default_factory=list, description="digests now in the mirror that were not before")
    dropped: list[str] = Field(default_factory=list, description="corrupted copies deleted (uploaded again next time)")
    complete: bool = Field(description="every blob is in the mirror and its manifest was written")


class WeightsMirror(Protocol):
    """A provider-side copy of the cache that the fetcher reads from and fills (``ensure_cached(mirror=...)``)."""

    #: where it is, for messages (``s3://BUCKET``)
    where: str

    def plan(self, manifest: Manifest) -> MirrorJob:
        """URLs for the blobs the mirror holds, and for uploading the ones it lacks."""
        ...

    def finish(self, manifest: Manifest, outcome: MirrorOutcome) -> MirrorResult:
        """Complete the uploads the fetcher reported, drop corrupted copies, write the manifest once all is there."""
        ...

    def abort_uploads(self, repo: str) -> int:
        """Abort the unfinished uploads of ``repo`` (a fill that never reached ``finish``: an interrupted or
        killed ``up``); how many. Their parts stop costing storage at once. A fill of the same model
        running meanwhile elsewhere loses only its mirror copy (the mirror only saves time)."""
        ...
