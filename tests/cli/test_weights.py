"""``gpuctl weights ls|pull|verify|rm`` against a fake GPU host and the stand-in hub on its veth."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.models.engine import HOST_CACHE_DIR
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.standins.hub_server import HubServer

Gpuctl = Callable[..., Result]
SHARD = "model-00002-of-00003.safetensors"


@pytest.fixture
def on_host(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, weights_hub: HubServer, isolated: Path,
            gpuctl: Gpuctl, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``gpuctl weights VERB ... --host root@10.200.N.2`` with the host's key pinned in this project."""
    pinned_known_hosts(isolated / ".gpuctl").write_text(fake_gpu_host.known_hosts_line + "\n")
    monkeypatch.setenv("HF_ENDPOINT", weights_hub.url)
    weights_hub.clear_log()

    def run(*args: str) -> Result:
        return gpuctl("weights", *args, "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key))

    return run


@pytest.mark.integration
def test_pull_ls_verify_rm_round_trip(on_host: Callable[..., Result], fake_gpu_host: FakeGpuHost,
                                      weights_hub: HubServer) -> None:
    model = weights_hub.repos["test-org/tiny-llama"]
    pulled = on_host("pull", "hf:test-org/tiny-llama", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    report = json.loads(pulled.stdout)
    assert (report["repo"], report["commit"], report["files"], report["cache_dir"]) == (
        model.repo, model.commit, 9, HOST_CACHE_DIR)
    assert report["downloaded_bytes"] == report["total_bytes"] > 1_500_000
    assert "downloading test-org/tiny-llama: 1.6 MB ..." in pulled.stderr

    listed = on_host("ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["repo"] == model.repo]
    assert (row["commits"], row["refs"], row["files"], row["complete"], row["managed"]) == (
        [model.commit], {"main": model.commit}, 9, True, True)
    table = on_host("ls")
    assert "test-org/tiny-llama" in table.stdout and f"main={model.commit[:8]}" in table.stdout

    blob = fake_gpu_host.private_path(f"{HOST_CACHE_DIR}/hub/models--test-org--tiny-llama/blobs/"
                                      + hashlib.sha256(model.files[SHARD]).hexdigest())
    blob.write_bytes(b"\0" * blob.stat().st_size)
    verified = on_host("verify", "hf:test-org/tiny-llama", "--json")
    assert verified.exit_code == 8
    assert json.loads(verified.stdout)[0]["corrupt"] == [SHARD]
    assert "1 cached model(s) failed verification" in verified.stderr and "weights pull" in verified.stderr

    weights_hub.clear_log()
    again = on_host("pull", "hf:test-org/tiny-llama", "--json")
    # the commit's manifest is on the host: only the API call and the one shard
    assert json.loads(again.stdout)["downloaded_bytes"] == len(model.files[SHARD]) == weights_hub.bytes_sent()
    assert on_host("verify", "--json").exit_code == 0

    removed = on_host("rm", "test-org/tiny-llama", "-y")
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.startswith("removed test-org/tiny-llama from /var/lib/gpuctl/hf-cache on root@")
    assert not blob.exists()
    assert on_host("rm", "test-org/tiny-llama", "-y").stdout.startswith("test-org/tiny-llama was not cached")


@pytest.mark.integration
def test_pickle_only_is_refused_with_exit_2_unless_allowed(on_host: Callable[..., Result]) -> None:
    refused = on_host("pull", "hf:test-org/pickle-only")
    assert refused.exit_code == 2
    assert "has only pickled weights (pytorch_model.bin)" in refused.stderr and "--allow-pickle" in refused.stderr
    allowed = on_host("pull", "hf:test-org/pickle-only", "--allow-pickle")
    assert allowed.exit_code == 0, allowed.stderr
    assert "warning: test-org/pickle-only has only pickled weights" in allowed.stderr
    assert allowed.stdout.startswith("test-org/pickle-only@")


@pytest.mark.integration
def test_a_gated_repo_without_a_token_exits_6_with_a_hint(on_host: Callable[..., Result]) -> None:
    result = on_host("pull", "hf:test-org/gated-llama")
    assert result.exit_code == 6
    assert "test-org/gated-llama is gated and no Hugging Face token is set (hint: accept the licence on " in (
        result.stderr)
    assert "export HF_TOKEN=..." in result.stderr


def test_rm_asks_first_and_refuses_without_a_terminal(gpuctl: Gpuctl) -> None:
    result = gpuctl("weights", "rm", "org/m", "--host", "local")
    assert result.exit_code == 2
    assert "not deleting the cached weights of org/m from /var/lib/gpuctl/hf-cache on local without a confirmation" \
        in result.stderr


def test_verify_needs_a_host_and_ls_defaults_to_the_provider_caches(gpuctl: Gpuctl) -> None:
    result = gpuctl("weights", "verify")
    assert result.exit_code == 2 and "no cache named" in result.stderr
    listed = gpuctl("weights", "ls")  # no provider has credentials here, so none is asked
    assert (listed.exit_code, listed.stdout) == (0, "")
    assert "no provider keeps a gpuctl weights cache yet" in listed.stderr
