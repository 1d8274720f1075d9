"""The S3 weights mirror: the fetcher (run in-process on temp caches) reading and filling a bucket of moto's
S3 server through the pre-signed URLs ``S3Mirror`` hands out, with the stand-in hub as the other source."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from gpuctl.errors import CredentialsError
from gpuctl.providers.aws.caches import S3Mirror, blob_key, manifest_key
from gpuctl.weights import fetcher
from gpuctl.weights.ensure import _finish_mirror, _plan_mirror
from gpuctl.weights.mirror import MirrorJob, MirrorOutcome, MirrorResult
from gpuctl.weights.models import Manifest
from gpuctl.weights.remote import FetcherRun, parse_event
from tests.standins.hub_server import HubServer, tiny_model
from tests.unit.test_weights_core import Recorder, manifest_of

REPO = "test-org/tiny-llama"
SHARD = "model-00001-of-00003.safetensors"
#: parts of 200 KiB: the 512 KiB shards go up in 3 parts, the small files in one PUT
PART_SIZE = 200 * 1024
BUCKET = f"gpuctl-hf-cache-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add(tiny_model(REPO))
        yield server


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1024)  # S3 wants 5 MiB; the shards are 512 KiB
    client = boto3.client("s3", region_name="eu-west-1", endpoint_url=s3_url,
                          config=Config(signature_version="s3v4"))
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def run_fetch(capsys: pytest.CaptureFixture[str], cache: Path, hub: HubServer, manifest: Manifest,
              mirror_job: MirrorJob | dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    job = cache.parent / f"{cache.name}-job.json"
    mirror = mirror_job.model_dump(mode="json") if isinstance(mirror_job, MirrorJob) else mirror_job
    job.write_text(json.dumps({"endpoint": hub.url, "manifest": manifest.model_dump(mode="json"), "workers": 3,
                               "mirror": mirror}))
    code = fetcher.main(["fetch", "--cache", str(cache), "--job", str(job)])
    return code, [e for e in map(parse_event, capsys.readouterr().out.splitlines()) if e is not None]


def mirrored_fetch(capsys: pytest.CaptureFixture[str], cache: Path, hub: HubServer, manifest: Manifest,
                   s3: Any) -> tuple[MirrorJob, list[dict[str, Any]], MirrorResult]:
    """What ensure_cached does with a mirror: plan, run the fetcher, finish."""
    mirror = S3Mirror(s3, BUCKET, part_size=PART_SIZE)
    planned = mirror.plan(manifest)
    code, events = run_fetch(capsys, cache, hub, manifest, planned)
    assert code == 0, events
    return planned, events, mirror.finish(manifest, MirrorOutcome.from_events(events))


def done(events: list[dict[str, Any]]) -> dict[str, Any]:
    return [e for e in events if e["e"] == "done"][-1]


def stored(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def blob_of(cache: Path, manifest: Manifest, name: str) -> Path:
    entry = next(f for f in manifest.files if f.name == name)
    return Path(fetcher.repo_dir(str(cache), manifest.repo)) / "blobs" / entry.digest


@pytest.fixture
def manifest(hub: HubServer) -> Manifest:
    return manifest_of(hub, REPO)


@pytest.fixture
def filled(capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer, manifest: Manifest,
           s3: Any) -> tuple[list[dict[str, Any]], MirrorResult]:
    """The bucket after a first fetch, which found it empty."""
    hub.clear_log()
    _, events, result = mirrored_fetch(capsys, tmp_path / "first", hub, manifest, s3)
    return events, result


def test_a_model_not_in_the_bucket_comes_from_the_hub_and_is_mirrored(
        filled: tuple[list[dict[str, Any]], MirrorResult], hub: HubServer, manifest: Manifest, s3: Any) -> None:
    events, result = filled
    repo = tiny_model(REPO)
    assert hub.bytes_sent() == manifest.total_bytes and done(events)["from_mirror"] == 0
    assert result.complete and result.added == sorted({f.digest for f in manifest.files}) and not result.dropped
    assert sorted(done(events)["mirrored"]) == sorted(f.name for f in manifest.files)
    for entry in manifest.files:
        assert stored(s3, blob_key(REPO, entry.digest)) == repo.files[entry.name]
    etags = {f.name: s3.head_object(Bucket=BUCKET, Key=blob_key(REPO, f.digest))["ETag"].strip('"')
             for f in manifest.files}
    # a multipart object's ETag is "MD5-OF-THE-PART-MD5S-PARTCOUNT"; a single PUT's is the content's MD5
    assert etags[SHARD].endswith("-3")
    assert etags["config.json"] == hashlib.md5(repo.files["config.json"]).hexdigest()
    assert Manifest.model_validate_json(stored(s3, manifest_key(REPO, manifest.commit))) == manifest
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_fresh_cache_copies_everything_from_the_bucket_and_nothing_from_the_hub(
        filled: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer, manifest: Manifest,
        s3: Any) -> None:
    hub.clear_log()
    planned, events, result = mirrored_fetch(capsys, tmp_path / "second", hub, manifest, s3)
    assert planned.uploads == {} and len(planned.sources) == len(manifest.files)
    assert hub.bytes_sent() == 0
    assert done(events)["downloaded"] == done(events)["from_mirror"] == manifest.total_bytes
    assert result == MirrorResult(added=[], dropped=[], complete=True)
    assert blob_of(tmp_path / "second", manifest, SHARD).read_bytes() == tiny_model(REPO).files[SHARD]


def test_a_partial_file_resumes_from_the_bucket_with_a_range(
        filled: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer, manifest: Manifest,
        s3: Any) -> None:
    cache = tmp_path / "resumed"
    blob = blob_of(cache, manifest, SHARD)
    blob.parent.mkdir(parents=True)
    Path(str(blob) + ".incomplete").write_bytes(tiny_model(REPO).files[SHARD][:100_000])
    hub.clear_log()
    _, events, _ = mirrored_fetch(capsys, cache, hub, manifest, s3)
    assert hub.bytes_sent() == 0
    assert done(events)["resumed"] == [SHARD]
    assert done(events)["from_mirror"] == manifest.total_bytes - 100_000  # the rest of the shard, not all of it
    assert blob.read_bytes() == tiny_model(REPO).files[SHARD]


def test_a_corrupted_copy_in_the_bucket_is_fetched_from_the_hub_then_dropped_and_mirrored_again(
        filled: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer, manifest: Manifest,
        s3: Any) -> None:
    good = tiny_model(REPO).files[SHARD]
    shard = next(f for f in manifest.files if f.name == SHARD)
    s3.put_object(Bucket=BUCKET, Key=blob_key(REPO, shard.digest), Body=b"\0" * len(good))  # same size, bad bytes
    hub.clear_log()
    _, events, result = mirrored_fetch(capsys, tmp_path / "third", hub, manifest, s3)
    assert [(e["name"], e["digest"]) for e in events if e["e"] == "mirror-corrupt"] == [(SHARD, shard.digest)]
    assert hub.bytes_sent() == len(good)  # only the bad file came from the hub
    assert blob_of(tmp_path / "third", manifest, SHARD).read_bytes() == good
    assert result == MirrorResult(added=[], dropped=[shard.digest], complete=False)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert blob_key(REPO, shard.digest) not in keys and manifest_key(REPO, manifest.commit) not in keys

    hub.clear_log()  # the next fetch (here: a fresh cache) puts a good copy back and the manifest after it
    planned, _, result = mirrored_fetch(capsys, tmp_path / "fourth", hub, manifest, s3)
    assert list(planned.uploads) == [shard.digest] and hub.bytes_sent() == len(good)
    assert result == MirrorResult(added=[shard.digest], dropped=[], complete=True)
    assert stored(s3, blob_key(REPO, shard.digest)) == good
    assert stored(s3, manifest_key(REPO, manifest.commit))


def test_an_unusable_mirror_falls_back_to_the_hub_and_never_names_its_urls(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer, manifest: Manifest) -> None:
    shard = next(f for f in manifest.files if f.name == SHARD)
    config = next(f for f in manifest.files if f.name == "config.json")
    secret = "X-Amz-Signature=feedface"
    dead = f"http://127.0.0.1:9/{BUCKET}/key?{secret}"  # the discard port: nothing listens
    hub.clear_log()
    code, events = run_fetch(capsys, tmp_path / "cache", hub, manifest, {
        "sources": {shard.digest: dead},
        "uploads": {config.digest: {"url": dead}, shard.digest: {"part_size": 300_000, "parts": [dead, dead]}}})
    assert code == 0
    assert hub.bytes_sent() == manifest.total_bytes
    assert sorted(e["name"] for e in events if e["e"] == "mirror-failed") == ["config.json", SHARD]
    assert [e["name"] for e in events if e["e"] == "retry"] == [SHARD]
    assert done(events)["mirrored"] == []
    assert secret not in json.dumps(events) and "127.0.0.1:9" not in json.dumps(events)


def test_a_refused_upload_is_not_retried(capsys: pytest.CaptureFixture[str], tmp_path: Path, hub: HubServer,
                                         manifest: Manifest, s3_url: str) -> None:
    config = next(f for f in manifest.files if f.name == "config.json")
    code, events = run_fetch(capsys, tmp_path / "cache", hub, manifest, {
        "uploads": {config.digest: {"url": f"{s3_url}/no-such-bucket-{uuid.uuid4().hex[:6]}/key"}}})
    assert code == 0
    [failed] = [e for e in events if e["e"] == "mirror-failed"]
    assert failed["message"] == "uploading config.json to the mirror failed (HTTP 404)"


class DeniedMirror:
    """A bucket these credentials may not read or write."""

    where = "s3://denied"

    def plan(self, manifest: Manifest) -> MirrorJob:
        raise CredentialsError("AWS denied ListObjectsV2 (AccessDenied)", "allow s3:ListBucket")

    def finish(self, manifest: Manifest, outcome: MirrorOutcome) -> MirrorResult:
        raise CredentialsError("AWS denied CompleteMultipartUpload (AccessDenied)", "allow s3:PutObject")


def test_a_mirror_gpuctl_cannot_use_is_a_warning_and_the_hub_serves_everything(manifest: Manifest) -> None:
    recorder = Recorder()
    assert _plan_mirror(DeniedMirror(), manifest, recorder) is None  # type: ignore[arg-type]
    _finish_mirror(DeniedMirror(), manifest, FetcherRun(exit_code=0), recorder)  # type: ignore[arg-type]
    assert recorder.calls == [
        ("warn", "the weights mirror s3://denied cannot be used, the hub serves every file: "
                 "AWS denied ListObjectsV2 (AccessDenied) (hint: allow s3:ListBucket)"),
        ("warn", "the weights mirror s3://denied was not updated: "
                 "AWS denied CompleteMultipartUpload (AccessDenied) (hint: allow s3:PutObject)")]


def test_an_upload_the_fetcher_did_not_finish_is_aborted_and_the_manifest_waits(
        capsys: pytest.CaptureFixture[str], hub: HubServer, manifest: Manifest, s3: Any) -> None:
    mirror = S3Mirror(s3, BUCKET, part_size=PART_SIZE)
    planned = mirror.plan(manifest)
    shard = next(f for f in manifest.files if f.name == SHARD)
    assert len(planned.uploads[shard.digest].parts) == 3
    # the fetcher died before reporting anything: nothing is completed, the open uploads are aborted
    result = mirror.finish(manifest, MirrorOutcome())
    assert result == MirrorResult(added=[], dropped=[], complete=False)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
