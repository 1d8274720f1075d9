"""The weights step on a fake GPU host over SSH, against the stand-in hub on the host's veth (10.200.N.1).

The fetcher runs on the host in a container of the (fake) engine image, exactly as for a real host.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpuctl.errors import CredentialsError, ExitCode, GpuctlError, UsageError
from gpuctl.host.docker import DockerEngine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.weights import ensure_cached
from gpuctl.weights.fetcher import repo_folder
from gpuctl.weights.models import CacheReport
from tests.fakehost.host import ENGINE_IMAGE, FakeGpuHost, FakeHostEnv
from tests.fakehost.shells import RecordingShell, wait_until
from tests.standins.hub_server import GOOD_TOKEN, HubRepo, HubServer

pytestmark = pytest.mark.integration

WANTED = ["config.json", "generation_config.json", "model-00001-of-00003.safetensors",
          "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
          "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


@dataclass
class World:
    host: FakeGpuHost
    hub: HubServer
    shell: RecordingShell
    docker: DockerEngine
    model: HubRepo

    def pull(self, repo: str | None = None, revision: str = "main", **kwargs: object) -> CacheReport:
        return ensure_cached(self.docker, repo or self.model.repo, revision, image=ENGINE_IMAGE,
                             endpoint=self.hub.url, **kwargs)  # type: ignore[arg-type]

    def cached(self, repo: str, *parts: str) -> Path:
        return self.host.private_path(f"{HOST_CACHE_DIR}/hub/{repo_folder(repo)}/" + "/".join(parts))


@pytest.fixture(scope="module")
def session(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshSession]:
    state_dir = tmp_path_factory.mktemp("weights-project") / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as opened:
        yield opened


@pytest.fixture
def world(fake_gpu_host: FakeGpuHost, weights_hub: HubServer, session: SshSession) -> World:
    weights_hub.clear_log()
    shell = RecordingShell(session)
    return World(fake_gpu_host, weights_hub, shell, DockerEngine(shell), weights_hub.repos["test-org/tiny-llama"])


def test_the_first_pull_downloads_every_byte_the_second_none(world: World) -> None:
    model = world.model
    first = world.pull(revision="main")
    wanted_bytes = sum(len(model.files[name]) for name in WANTED)
    assert (first.commit, first.files, first.format) == (model.commit, len(WANTED), "safetensors")
    assert first.total_bytes == first.downloaded_bytes == wanted_bytes
    index = len(model.files["model.safetensors.index.json"])  # also read once by gpuctl itself, to pick the shards
    assert world.hub.bytes_sent() == wanted_bytes + index
    assert first.manifest_source == "hub" and first.reused_bytes == 0
    # LFS files came from the storage origin, and the token (none here) never went there
    assert {h.path.rsplit("/", 1)[-1] for h in world.hub.downloads()} >= {
        hashlib.sha256(model.files[n]).hexdigest() for n in WANTED if n.endswith(".safetensors")}
    # huggingface_hub's layout: a relative link per file into blobs/, and refs/main
    snapshot = world.cached(model.repo, "snapshots", model.commit)
    assert sorted(p.name for p in snapshot.iterdir()) == WANTED
    link = snapshot / "model-00002-of-00003.safetensors"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.read_bytes() == model.files["model-00002-of-00003.safetensors"]
    assert world.cached(model.repo, "refs", "main").read_text() == model.commit

    world.hub.clear_log()
    again = world.pull(revision=model.commit)  # a pinned revision: the manifest stored on the host suffices
    assert (again.downloaded_bytes, again.reused_bytes, again.manifest_source) == (0, wanted_bytes, "cache")
    assert world.hub.log == []  # not one request, not even to the API
    world.hub.clear_log()
    branch = world.pull(revision="main")  # a branch: one API call to learn its commit, then no download
    assert branch.downloaded_bytes == 0 and world.hub.bytes_sent() == 0
    assert [h.path for h in world.hub.log] == [f"/api/models/{model.repo}/revision/main"]
    assert not world.host.docker("ps", "-aq", "--filter", "name=gpuctl-weights-").stdout.strip()


def test_a_corrupted_shard_is_detected_and_fetched_again(world: World) -> None:
    model, shard = world.model, "model-00003-of-00003.safetensors"
    world.pull(revision=model.commit)
    blob = world.cached(model.repo, "blobs", hashlib.sha256(model.files[shard]).hexdigest())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    blob.write_bytes(bytes(data))
    world.hub.clear_log()
    report = world.pull(revision=model.commit)
    assert report.refetched == [shard]
    assert report.downloaded_bytes == world.hub.bytes_sent() == len(model.files[shard])
    assert blob.read_bytes() == model.files[shard]


def test_a_download_killed_halfway_resumes_where_it_stopped(world: World) -> None:
    model, shard = world.model, "model-00002-of-00003.safetensors"
    forget = ["rm", "-rf", f"{HOST_CACHE_DIR}/hub/{repo_folder(model.repo)}",
              f"{HOST_CACHE_DIR}/gpuctl/manifests/{repo_folder(model.repo)}"]
    assert world.host.run_inside(forget).returncode == 0
    stall = world.hub.stall(hashlib.sha256(model.files[shard]).hexdigest(), after=192 * 1024)
    failed: list[BaseException] = []

    def pull() -> None:
        try:
            world.pull(revision="main")
        except GpuctlError as exc:
            failed.append(exc)

    thread = threading.Thread(target=pull)
    thread.start()
    assert stall.reached.wait(60)
    partial = world.cached(model.repo, "blobs", hashlib.sha256(model.files[shard]).hexdigest() + ".incomplete")
    blobs = partial.parent

    def only_the_stalled_shard_is_left() -> bool:  # the other files finish (in any order): only one is cut short
        names = [p.name for p in blobs.iterdir()] if blobs.is_dir() else []
        unfinished = [n for n in names if n.endswith(".incomplete")]
        return (unfinished == [partial.name] and partial.stat().st_size == 192 * 1024
                and len(names) - 1 >= len(set(WANTED)) - 1)

    assert wait_until(only_the_stalled_shard_is_left, timeout=60)
    names = world.host.docker("ps", "-q", "--filter", "name=gpuctl-weights-").stdout.split()
    world.host.docker("rm", "--force", *names)  # the fetcher dies halfway, as on a lost host or a kill -9
    stall.release.set()  # the fetcher is gone (rm returns once it is): the hub may finish its side
    thread.join(60)
    assert not thread.is_alive()
    # docker may still show the killed container (exit 137) or have removed it already: the same message
    [error] = failed
    assert error.exit_code == ExitCode.PROVIDER
    assert "the weights fetcher was stopped on" in error.message and "before it finished" in error.message
    assert error.hint == "run the command again: what arrived is kept and the download resumes"

    world.hub.clear_log()
    report = world.pull(revision="main")
    assert report.resumed == [shard]
    [resumed] = [h for h in world.hub.downloads() if h.range]
    assert (resumed.range, resumed.status, resumed.sent) == (f"bytes={192 * 1024}-", 206,
                                                              len(model.files[shard]) - 192 * 1024)
    blob = world.cached(model.repo, "snapshots", model.commit, shard)
    assert blob.read_bytes() == model.files[shard]


def test_a_pickle_only_repo_is_refused_before_anything_runs_on_the_host(world: World) -> None:
    with pytest.raises(UsageError) as caught:
        world.pull("test-org/pickle-only")
    assert caught.value.exit_code == ExitCode.USAGE
    assert "only pickled weights (pytorch_model.bin)" in caught.value.message
    assert "--allow-pickle" in caught.value.hint
    assert world.hub.bytes_sent() == 0
    assert [argv[0] for argv in world.shell.argvs] == ["cat"]  # looked for a stored manifest; ran nothing


def test_a_gated_repo_needs_a_token_that_has_access(world: World) -> None:
    gated = world.hub.repos["test-org/gated-llama"]
    with pytest.raises(CredentialsError) as missing:
        world.pull(gated.repo)
    assert missing.value.exit_code == ExitCode.CREDENTIALS
    assert "is gated and no Hugging Face token is set" in missing.value.message
    assert "HF_TOKEN" in missing.value.hint and f"/{gated.repo}" in missing.value.hint

    world.shell.argvs.clear()
    report = world.pull(gated.repo, hf_token=GOOD_TOKEN)
    assert report.downloaded_bytes > 0
    assert not any(GOOD_TOKEN in word for argv in world.shell.argvs for word in argv)
    assert any(h.authorized for h in world.hub.log if "/resolve/" in h.path)
    assert not any(h.authorized for h in world.hub.log if h.path.startswith("/cdn/"))  # never sent to storage
    private = world.host.home / ".gpuctl"
    assert not private.exists() or list(private.iterdir()) == [], "the token reached the fetcher on its stdin only"

    shard = "model-00001-of-00003.safetensors"
    world.cached(gated.repo, "blobs", hashlib.sha256(gated.files[shard]).hexdigest()).unlink()
    with pytest.raises(CredentialsError) as refused:  # the stored manifest suffices: the host's fetcher is refused
        world.pull(gated.repo, gated.commit, hf_token="hf_WRONGtoken")
    assert refused.value.message == f"HF_TOKEN has no access to the gated repo {gated.repo}"
    assert [h.status for h in world.hub.log[-1:]] == [403]
