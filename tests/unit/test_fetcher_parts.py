"""The fetcher's large files: ranged parts over several connections, verified in order, resumable after any kill."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuctl.weights import fetcher
from gpuctl.weights.models import Manifest, WeightFile
from tests.standins.hub_server import HubRepo, HubServer, Shaping, SyntheticFile
from tests.unit.test_weights_core import events, last

MIB = 1 << 20
REPO = "test-org/big-model"
SHARD = "model-00001-of-00001.safetensors"


def big_repo(size: int, seed: int = 1) -> HubRepo:
    return HubRepo(repo=REPO, files={"config.json": b'{"model_type": "llama"}\n', SHARD: SyntheticFile(size, seed)})


def manifest_for(repo: HubRepo) -> Manifest:
    files = []
    for name, data in sorted(repo.files.items()):
        lfs = repo.is_lfs(name)
        files.append(WeightFile(name=name, size=len(data), algo="sha256" if lfs else "git-blob-sha1",
                                digest=repo.sha256(name) if lfs else repo.blob_id(name)))
    return Manifest(repo=repo.repo, revision="main", commit=repo.commit, format="safetensors", gated=False,
                    files=files)


def write_job(path: Path, hub: HubServer, manifest: Manifest, **options: Any) -> Path:
    path.write_text(json.dumps({"endpoint": hub.url, "manifest": manifest.model_dump(mode="json"), **options}))
    return path


def fetch(capsys: pytest.CaptureFixture[str], cache: Path, job: Path) -> tuple[int, list[dict[str, Any]]]:
    code = fetcher.main(["fetch", "--cache", str(cache), "--job", str(job)])
    return code, events(capsys)


def blob_of(cache: Path, manifest: Manifest, name: str = SHARD) -> Path:
    entry = next(f for f in manifest.files if f.name == name)
    return Path(fetcher.repo_dir(str(cache), manifest.repo)) / "blobs" / entry.digest


def ranges(hub: HubServer) -> list[str]:
    return sorted(h.range or "" for h in hub.downloads() if h.path.startswith("/cdn/"))


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


# -- parts ---------------------------------------------------------------------------------------------------
def test_a_large_file_comes_in_parts_over_several_connections(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with HubServer(shaping=Shaping(per_connection=2 * MIB)) as hub:  # slow enough for the parts to overlap
        repo = hub.add(big_repo(5 * MIB))
        manifest = manifest_for(repo)
        job = write_job(tmp_path / "job.json", hub, manifest, connections=4, part_size=MIB)
        code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    assert ranges(hub) == [f"bytes={n * MIB}-{(n + 1) * MIB - 1}" for n in range(5)]
    assert hub.most_at_once >= 2  # parts of one file at once, each on its own connection
    resolved = [h for h in hub.log if h.path.endswith(f"/resolve/{repo.commit}/{SHARD}")]
    assert len(resolved) == 1  # one trip through the hub; the other parts went straight to its storage
    assert hashlib.sha256(blob_of(tmp_path / "cache", manifest).read_bytes()).hexdigest() == repo.sha256(SHARD)
    size = manifest.total_bytes
    assert last(found, "plan")["need"] == size and last(found, "done")["downloaded"] == size == hub.bytes_sent()
    assert last(found, "progress") == {"e": "progress", "done": size, "need": size}
    assert not list((blob_of(tmp_path / "cache", manifest).parent).glob("*.incomplete*"))


def test_files_in_flight_take_turns_on_the_connections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with HubServer(shaping=Shaping(per_connection=2 * MIB)) as hub:
        files: dict[str, bytes | SyntheticFile] = {f"m-{n}.safetensors": SyntheticFile(3 * MIB, n) for n in range(3)}
        repo = hub.add(HubRepo(repo=REPO, files=files))
        job = write_job(tmp_path / "job.json", hub, manifest_for(repo), connections=4, part_size=MIB, workers=2)
        code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    blobs = {repo.sha256(name): name for name in files}
    first = [blobs[h.path.rsplit("/", 1)[1]] for h in hub.downloads() if h.path.startswith("/cdn/")][:4]
    assert set(first) == {"m-0.safetensors", "m-1.safetensors"}  # two files at once, the third after them


def test_a_small_file_stays_one_request_and_parts_split_evenly() -> None:
    assert fetcher.split(10, 64) == [[0, 10, 0]]
    assert fetcher.split(0, 64) == [[0, 0, 0]]
    assert fetcher.split(130, 64) == [[0, 44, 0], [44, 88, 0], [88, 130, 0]]  # no 2-byte tail part


def test_a_prefix_left_by_a_download_in_one_request_resumes_as_parts(tmp_path: Path) -> None:
    partial = tmp_path / "blob.incomplete"
    partial.write_bytes(b"x" * 150)
    assert fetcher.arrived_parts(str(partial), 300, 100) == [[0, 100, 100], [100, 200, 50], [200, 300, 0]]
    (tmp_path / "blob.incomplete.parts").write_text("{broken")  # a record that cannot be read: start over
    assert fetcher.arrived_parts(str(partial), 300, 100) == [[0, 100, 0], [100, 200, 0], [200, 300, 0]]
    partial.write_bytes(b"\0" * 300)
    (tmp_path / "blob.incomplete.parts").write_text(json.dumps({"size": 300, "parts": [[0, 150, 20], [150, 300, 150]]}))
    assert fetcher.arrived_parts(str(partial), 300, 100) == [[0, 150, 20], [150, 300, 150]]  # the record's own split


def test_an_expired_storage_url_is_asked_of_the_hub_again(hub: HubServer, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub.add(big_repo(4 * MIB, seed=2))
    manifest = manifest_for(repo)
    hub.fail(403, on="/cdn/", after=2, code="AccessDenied", message="Request has expired")
    job = write_job(tmp_path / "job.json", hub, manifest, connections=1, part_size=MIB)
    code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    resolved = [h for h in hub.log if h.path.endswith(f"/resolve/{repo.commit}/{SHARD}")]
    assert len(resolved) == 2 and hub.bytes_sent() == manifest.total_bytes


def test_a_wrong_part_fails_the_digest_and_the_file_is_fetched_again(hub: HubServer, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub.add(big_repo(3 * MIB, seed=3))
    manifest = manifest_for(repo)
    blobs = blob_of(tmp_path / "cache", manifest).parent
    blobs.mkdir(parents=True)
    partial = blobs / (blob_of(tmp_path / "cache", manifest).name + ".incomplete")
    partial.write_bytes(b"\0" * 3 * MIB)  # a record saying part 2 arrived, but its bytes are wrong
    Path(str(partial) + ".parts").write_text(json.dumps({"size": 3 * MIB, "parts": [
        [0, MIB, 0], [MIB, 2 * MIB, MIB], [2 * MIB, 3 * MIB, 0]]}))
    job = write_job(tmp_path / "job.json", hub, manifest, connections=2, part_size=MIB)
    code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    assert any(e["e"] == "retry" and "wrong sha256" in e["message"] for e in found)
    config = len(repo.files["config.json"])
    assert hub.bytes_sent() == config + 2 * MIB + 3 * MIB  # the two missing parts, then the whole file again
    assert hashlib.sha256(blob_of(tmp_path / "cache", manifest).read_bytes()).hexdigest() == repo.sha256(SHARD)


# -- the connections -----------------------------------------------------------------------------------------
def test_connections_are_kept_alive_from_one_part_to_the_next(hub: HubServer, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo = hub.add(big_repo(6 * MIB, seed=5))
    job = write_job(tmp_path / "job.json", hub, manifest_for(repo), connections=2, part_size=MIB)
    code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    assert len(ranges(hub)) == 6
    assert hub.connections <= 4  # two to the hub, two to its storage: not one per request


def test_a_proxy_from_the_environment_is_used(hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = hub.add(big_repo(2 * MIB, seed=6))
    job = write_job(tmp_path / "job.json", hub, manifest_for(repo), connections=2, part_size=MIB)
    data = json.loads(job.read_text())
    job.write_text(json.dumps({**data, "endpoint": "http://hub.invalid:9"}))  # only the proxy can reach it
    monkeypatch.setenv("http_proxy", hub.url)  # the stand-in answers proxy requests (absolute URLs) too
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    code, found = fetch(capsys, tmp_path / "cache", job)
    assert code == 0, last(found, "error")
    assert hub.bytes_sent() == manifest_for(repo).total_bytes


# -- killed at any point, resumed where each part stopped ------------------------------------------------
def run_fetcher(job: Path, cache: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, fetcher.__file__, "fetch", "--cache", str(cache), "--job", str(job)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def gaps(partial: Path, size: int) -> list[str]:
    """The ranges a resumed run must ask for, from what the killed run left (its record, read as the fetcher does)."""
    parts = fetcher.arrived_parts(str(partial), size, MIB)
    return sorted(f"bytes={start + done}-{end - 1}" for start, end, done in parts if start + done < end)


def test_a_download_killed_at_any_point_resumes_every_part_where_it_stopped(tmp_path: Path) -> None:
    rng = random.Random(7)
    with HubServer(shaping=Shaping(per_connection=3 * MIB)) as hub:
        repo = hub.add(big_repo(6 * MIB, seed=4))
        manifest = manifest_for(repo)
        job = write_job(tmp_path / "job.json", hub, manifest, connections=3, part_size=MIB)
        cache = tmp_path / "cache"
        blob = blob_of(cache, manifest)
        partial = Path(str(blob) + ".incomplete")
        record = Path(str(partial) + ".parts")
        kills = resumed = 0
        for _ in range(6):
            expected = gaps(partial, len(repo.files[SHARD])) if partial.exists() else None
            hub.clear_log()
            process = run_fetcher(job, cache)
            deadline = time.monotonic() + 30
            while hub.bytes_sent() == 0 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # killed only once bytes flow: every run makes progress
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait(30)
            if expected is not None:  # what the run asked for is exactly what the one before left missing
                asked = sorted({h.range or "" for h in hub.log if h.path.startswith("/cdn/")})
                assert set(asked) <= set(expected) and (asked or not expected), (asked, expected)
                resumed += bool(asked)
            if blob.exists():
                break
        if not blob.exists():
            assert run_fetcher(job, cache).wait(60) == 0
    assert kills >= 1 and resumed >= 1
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == repo.sha256(SHARD)
    assert not partial.exists() and not record.exists()


# -- shipped to a RunPod pod in its environment ---------------------------------------------------------------
def test_the_fetcher_fits_in_one_pod_environment_variable_and_runs_from_it(tmp_path: Path) -> None:
    from gpuctl.models.weights_cache import WeightsCache
    from gpuctl.providers.runpod import seeding as runpod_seed
    from gpuctl.weights.models import SeedRequest

    manifest = manifest_for(big_repo(MIB))
    cache = WeightsCache(provider="runpod", id="vol-1", name="gpuctl-hf-cache-US-TX-3", region="US-TX-3",
                         kind="network-volume")
    request = SeedRequest(name="m", manifest=manifest, endpoint="https://hub.example", tags={},
                          idempotency_token="t", hf_token=None)
    env = runpod_seed.seed_pod_request(cache, request, {"id": "cpu", "vcpuCount": 4}, expires_at=1)["env"]
    assert len(env[runpod_seed.FETCHER_ENV]) < 64 * 1024  # docker's --env-file line limit; the kernel's is 128 KiB
    done = subprocess.run([sys.executable, "-c", runpod_seed.BOOTSTRAP, "ls", "--cache", str(tmp_path)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
