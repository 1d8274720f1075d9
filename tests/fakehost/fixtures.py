"""pytest fixtures for fake GPU hosts (see host.py). Enable with
``pytest_plugins = ["tests.fakehost.fixtures"]`` in tests/conftest.py.

* ``fakehost_env`` (session): the fake engine image (built once, about 1 s) and the session's SSH
  client key; skips the test with the reason when this machine cannot run fake hosts.
* ``fake_gpu_host`` (module): one started host with 1x NVIDIA L40S, shared by a module's tests.
* ``fake_host_hub`` (function): the stand-in hub of ``fake_gpu_host``, set as ``HF_ENDPOINT`` for the
  test, so ``gpuctl up`` on that host fetches its weights there; modules that deploy use it.
* ``make_fake_gpu_host`` (function): a factory, ``make_fake_gpu_host(gpus=[FakeGpu(...)] * 2)``;
  ``HF_ENDPOINT`` is the hub of the host it made last; every host it made is stopped when the test ends.
* ``fake_cloud`` (function): a fresh in-test cloud (cloud.py), the only providers gpuctl sees besides
  ``ssh``, in this process and in ``gpuctl_process`` subprocesses.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gpuctl.plugins import ProviderRegistry
from tests.fakehost.cloud import STATE_ENV, Cloud, registry
from tests.fakehost.host import (
    FakeGpu,
    FakeGpuHost,
    FakeHostEnv,
    FakeHostUnavailable,
    missing_prerequisites,
    prepare_env,
)
from tests.standins.hub_server import HubServer, pickle_only_model, tiny_model


@pytest.fixture(scope="session")
def fakehost_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHostEnv]:
    problem = missing_prerequisites()
    if problem:
        pytest.skip(problem)
    workdir = tmp_path_factory.mktemp("fakehosts")
    yield prepare_env(workdir)
    shutil.rmtree(workdir / "registry-seed", ignore_errors=True)  # 76 MB pytest would otherwise keep


def _started(host: FakeGpuHost) -> FakeGpuHost:
    try:
        return host.start()
    except FakeHostUnavailable as exc:
        pytest.skip(f"cannot start a fake GPU host here: {exc}")


@contextmanager
def hosts_sharing_a_hub(fakehost_env: FakeHostEnv, count: int) -> Iterator[list[FakeGpuHost]]:
    """``count`` started hosts (skipped where none can start); every one fetches weights from the first
    one's stand-in hub. All of them are stopped on the way out."""
    started: list[FakeGpuHost] = []
    try:
        for _ in range(count):
            started.append(_started(fakehost_env.new_host()))
        for host in started[1:]:
            host.reach_hub_of(started[0])
        yield started
    finally:
        for host in started:
            host.stop()


@pytest.fixture(scope="module")
def fake_gpu_host(fakehost_env: FakeHostEnv) -> Iterator[FakeGpuHost]:
    host = _started(fakehost_env.new_host())
    try:
        yield host
    finally:
        host.stop()


def _serve_weights_from(host: FakeGpuHost, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    assert host.hub is not None, "the host is not started"
    monkeypatch.setenv("HF_ENDPOINT", host.hub.url)
    return host.hub


@pytest.fixture(scope="module")
def weights_hub(fake_gpu_host: FakeGpuHost) -> Iterator[HubServer]:
    """A hub with known repos (a tiny model, a gated one, a pickle-only one) on the root side of the host's
    own veth pair: reachable from the host, and from nothing else."""
    with HubServer(host=f"10.200.{fake_gpu_host.index}.1") as server:
        server.add(tiny_model("test-org/tiny-llama"))
        server.add(tiny_model("test-org/gated-llama", gated=True, seed=1))
        server.add(pickle_only_model("test-org/pickle-only"))
        yield server


@pytest.fixture
def fake_host_hub(fake_gpu_host: FakeGpuHost, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    return _serve_weights_from(fake_gpu_host, monkeypatch)


@pytest.fixture
def make_fake_gpu_host(fakehost_env: FakeHostEnv, isolated: Path,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeGpuHost]]:
    hosts: list[FakeGpuHost] = []

    def make(gpus: list[FakeGpu] | None = None) -> FakeGpuHost:
        host = fakehost_env.new_host(gpus)
        hosts.append(host)
        _serve_weights_from(_started(host), monkeypatch)
        return host

    try:
        yield make
    finally:
        for host in hosts:
            host.stop()


@pytest.fixture
def fake_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    path = tmp_path / "fakecloud.json"
    monkeypatch.setenv(STATE_ENV, str(path))
    monkeypatch.setattr(ProviderRegistry, "discover", classmethod(lambda cls, eps=None: registry()))
    return Cloud(path)
