"""One SSH login for a whole ``up --host``: the host's offer, its check, the weights, the engine, the
watchdog and the health wait all go over one HostConnection, docker included."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.deploy.hosts import connect, host_offer
from gpuctl.deploy.watchdog import arm
from gpuctl.engines import build_engine_spec
from gpuctl.host.checks import check_host
from gpuctl.host.connection import HostConnection
from gpuctl.host.health import EngineWatch, wait_for_engine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.labels import host_labels
from gpuctl.host.leftovers import remove_deployment
from gpuctl.host.target import parse_target
from gpuctl.models.engine import HOST_CACHE_DIR, EngineOptions
from gpuctl.recipes import resolve_model
from gpuctl.weights import ensure_cached, serve_from_cache
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.fakehost.shells import wait_until
from tests.standins.hub_server import HubServer

pytestmark = pytest.mark.integration


def logins(host: FakeGpuHost) -> int:
    return host.log("sshd").count("Accepted publickey")


def sessions_on(host: FakeGpuHost) -> list[str]:
    """The host's processes gpuctl's connection keeps: sshd session children and docker's dial-stdio."""
    return [cmd for _, cmd in host.processes() if "dial-stdio" in cmd or cmd.startswith("sshd: root")]


def test_one_login_serves_every_step(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                     weights_hub: HubServer, isolated: Path) -> None:
    state_dir = isolated / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    target = parse_target(fake_gpu_host.target)
    before = logins(fake_gpu_host)
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True, hf_token=False))
    labels = host_labels("engine", project="p1", deployment="one", token="gpuctl-one")
    with HostConnection(connect(target, state_dir, identity=fakehost_env.client_key)) as host:
        offer = host_offer(host.shell, target)  # before anything is confirmed
        report = check_host(host.shell, expected_gpu=offer.gpu, expected_count=offer.gpu_count, user_owned=True)
        docker = host.docker()
        assert docker.sudo is report.docker_sudo is False and host.docker() is docker
        cached = ensure_cached(docker, "test-org/tiny-llama", "main", image=spec.image, endpoint=weights_hub.url,
                               labels={**labels, "gpuctl-role": "fetcher"})
        engine = serve_from_cache(spec, pickle=cached.format == "pickle")
        docker.run_engine(engine, secrets={"VLLM_API_KEY": "sk-one"}, name="gpuctl-one", host_port=8300,
                          cache_dir=HOST_CACHE_DIR, labels=labels)
        arm(host.shell, name="one", container="gpuctl-one", seconds_left=3600, stop_machine=False,
            token="gpuctl-one", project="p1", sudo=docker.sudo)
        watch = EngineWatch(docker, "gpuctl-one")
        with host.shell.forward(8300) as port:  # type: ignore[attr-defined]
            healthy = wait_for_engine(f"http://127.0.0.1:{port}", api_key="sk-one", timeout=60, interval=0.2,
                                      exited=watch.problem, log_tail=watch.log_tail)
        assert healthy.models == [spec.served_model_name]
        gone = remove_deployment(host.shell, project="p1", name="one", token="gpuctl-one", docker=docker)
        assert sorted(gone)[0].startswith("TTL watchdog") and "container gpuctl-one (engine)" in gone
        assert logins(fake_gpu_host) == before + 1, "every step above used the one SSH session"
    assert wait_until(lambda: sessions_on(fake_gpu_host) == []), "closing the connection ends all of it on the host"


@pytest.mark.usefixtures("fake_host_hub")
def test_up_host_logs_in_once(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    before = logins(fake_gpu_host)
    result = gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                    "--accept-host-key", "--name", "once", "-y")
    try:
        assert result.exit_code == 0, result.stderr
        assert "health bench:" in result.stderr, "the bench ran, through the tunnel of that one session"
        assert logins(fake_gpu_host) == before + 1
    finally:
        gpuctl("down", "once", "-y")
