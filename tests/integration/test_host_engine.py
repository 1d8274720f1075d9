"""Step 6 and 7 on a fake GPU host over SSH: host check, bootstrap, engine container, health, logs, removal.

docker is driven through docker-py, over ``docker system dial-stdio`` on channels of the one SSH session.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.errors import ExitCode
from gpuctl.host.checks import bootstrap_host, check_host
from gpuctl.host.docker import DockerEngine
from gpuctl.host.errors import HostCheckError
from gpuctl.host.health import EngineHealthError, wait_for_engine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from gpuctl.models.engine import HOST_CACHE_DIR, EngineOptions, EngineSpec
from gpuctl.recipes import resolve_model
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.fakehost.shells import RecordingShell, wait_until

pytestmark = pytest.mark.integration

HF_TOKEN = "hf_FAKEHOSTsecretTOKEN4242"
API_KEY = "sk-fakehost-API-KEY-1717"
SECRETS = (HF_TOKEN, API_KEY)


@dataclass
class Deployed:
    host: FakeGpuHost
    shell: RecordingShell
    engine: DockerEngine
    spec: EngineSpec
    container_id: str


@pytest.fixture(scope="module")
def session(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshSession]:
    state_dir = tmp_path_factory.mktemp("engine-project") / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as opened:
        yield opened


@pytest.fixture(scope="module")
def deployed(fake_gpu_host: FakeGpuHost, session: SshSession) -> Iterator[Deployed]:
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True, hf_token=True))
    shell = RecordingShell(session)
    engine = DockerEngine(shell)
    container_id = engine.run_engine(spec, secrets={"HF_TOKEN": HF_TOKEN, "VLLM_API_KEY": API_KEY},
                                     name="gpuctl-engine", cache_dir=HOST_CACHE_DIR)
    yield Deployed(fake_gpu_host, shell, engine, spec, container_id)
    engine.remove("gpuctl-engine", stop_timeout=1)


def test_host_check_passes_on_the_offered_gpu(session: SshSession) -> None:
    report = check_host(session, expected_gpu="L40S", expected_count=1)
    assert (report.gpu, report.gpu_count, report.gpus[0].memory_total_mib) == ("L40S", 1, 46068)
    assert report.docker.server_version.startswith("20.10.")
    assert (report.nvidia_runtime, report.docker_sudo, report.bootstrapped) == (
        "nvidia-container-runtime-hook", False, False)


def test_host_check_refuses_another_gpu_and_a_dead_driver(fake_gpu_host: FakeGpuHost, session: SshSession) -> None:
    with pytest.raises(HostCheckError) as caught:
        check_host(session, expected_gpu="h100-sxm", expected_count=1)
    assert caught.value.message == (f"{session.where} has NVIDIA L40S (46068 MiB), but the offer promised "
                                    "1x H100-SXM")
    fake_gpu_host.fail_nvidia_smi(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    try:
        with pytest.raises(HostCheckError) as dead:
            check_host(session, expected_gpu="L40S", expected_count=1)
    finally:
        fake_gpu_host.heal_nvidia_smi()
    assert "exit 9 (the NVIDIA driver is not loaded)" in dead.value.message
    assert dead.value.exit_code == ExitCode.PROVIDER


def test_bootstrap_template_runs_on_the_host(fake_gpu_host: FakeGpuHost, session: SshSession) -> None:
    assert bootstrap_host(session) == []  # docker and the hook are there: every step reports "ok"
    cache = fake_gpu_host.private_path(HOST_CACHE_DIR)
    config = fake_gpu_host.private_path("/etc/gpuctl")
    assert cache.is_dir()
    assert stat.S_IMODE(config.stat().st_mode) == 0o700


def files_holding(host: FakeGpuHost, *secrets: str) -> list[str]:
    """Every file of the host (its home, /etc/gpuctl, docker's data root with config.v2.json) holding a secret."""
    found = subprocess.run(["grep", "-rlaF", *(f"-e{s}" for s in secrets), str(host.workdir)],
                           capture_output=True, text=True)
    return [path for path in found.stdout.splitlines() if not path.endswith((".log", "registry.yml"))]


def test_secrets_reach_the_engine_but_no_command_line_config_or_file(deployed: Deployed) -> None:
    for argv in deployed.shell.argvs:
        assert not any(secret in word for secret in SECRETS for word in argv), argv
    for pid, cmdline in deployed.host.processes():
        assert not any(secret in cmdline for secret in SECRETS), (pid, cmdline)
    assert any(cmdline.startswith("/usr/bin/python3 /usr/local/bin/vllm serve Qwen/")
               for _, cmdline in deployed.host.processes())  # the engine process itself was checked
    inspected = json.loads(deployed.host.docker("inspect", "gpuctl-engine").stdout)[0]
    assert not any(secret in json.dumps(inspected) for secret in SECRETS), "docker inspect shows no secret"
    assert files_holding(deployed.host, *SECRETS) == [], "no file on the host holds a secret (config.v2.json too)"
    assert not (deployed.host.home / ".gpuctl").exists(), "nothing was written in the login user's home"
    assert inspected["HostConfig"]["ShmSize"] == 8 * 1024**3
    assert inspected["HostConfig"]["DeviceRequests"][0]["Count"] == -1  # --gpus all
    assert inspected["Config"]["Labels"] == {"gpuctl": "managed", "gpuctl-role": "engine"}


def test_engine_is_healthy_through_an_ssh_tunnel(deployed: Deployed, session: SshSession) -> None:
    state = deployed.engine.inspect("gpuctl-engine")
    assert state is not None and state.running
    assert state.id == deployed.container_id
    assert state.ports == {"8000/tcp": ["127.0.0.1:8000"]}  # bound to the host's loopback only
    with session.forward(8000) as port:
        base = f"http://127.0.0.1:{port}"
        result = wait_for_engine(base, api_key=API_KEY, timeout=30, interval=0.1,
                                 exited=lambda: None, log_tail=lambda: deployed.engine.logs("gpuctl-engine"))
        assert result.models == [deployed.spec.served_model_name]
        assert result.smoke_text.strip() != ""
        anonymous = httpx.post(f"{base}/v1/completions", timeout=10,
                               json={"model": deployed.spec.served_model_name, "prompt": "x", "max_tokens": 1})
        assert anonymous.status_code == 401  # the API key passed on stdin is enforced


def test_logs_tail_and_follow(deployed: Deployed) -> None:
    text = deployed.engine.logs("gpuctl-engine", tail=50)
    assert f"INFO fake engine: serving {deployed.spec.served_model_name} (GPUs: all)" in text.splitlines()
    lines = deployed.engine.follow_logs("gpuctl-engine", tail=50)
    seen = []
    for line in lines:
        seen.append(line)
        if line.startswith("READY "):
            break
    dialing = sum("dial-stdio" in cmd for _, cmd in deployed.host.processes())
    lines.close()
    assert seen[0].startswith("INFO fake engine: serving")
    assert seen[-1] == "READY http://0.0.0.0:8000"
    # closing the stream ends its channel, and with it the dial-stdio process that carried it
    assert wait_until(lambda: sum("dial-stdio" in cmd for _, cmd in deployed.host.processes()) < dialing)


@pytest.mark.parametrize("engine", ["tgi", "sglang"])
def test_tgi_and_sglang_get_their_key_the_same_way(engine: str, fake_gpu_host: FakeGpuHost,
                                                   session: SshSession) -> None:
    """TGI keeps its image's entrypoint (the key in API_KEY); SGLang takes the key only as --api-key, which
    gpuctl appends inside its 'python3 -m' process. The fake image serves both, enforcing the key."""
    if engine == "tgi":
        spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(engine="tgi", api_key=True))
        fake_gpu_host.preload(spec.image)
        secrets = {"API_KEY": API_KEY}
    else:  # SGLang's shape: python3 -m MODULE, the key only as a flag (the fake image's module stands in)
        vllm = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True))
        spec = vllm.model_copy(update={"entrypoint": ["python3", "-m", "engine_shim"], "secret_env": [],
                                       "secret_flags": {"--api-key": "SGLANG_API_KEY"}, "api_key_env": None})
        secrets = {"SGLANG_API_KEY": API_KEY}
    docker = DockerEngine(session)
    docker.run_engine(spec, secrets=secrets, name=f"keyed-{engine}", host_port=8200)
    try:
        with session.forward(8200) as port:
            base = f"http://127.0.0.1:{port}"
            healthy = wait_for_engine(base, api_key=API_KEY, timeout=30, interval=0.1,
                                      log_tail=lambda: docker.logs(f"keyed-{engine}"))
            assert healthy.models == [spec.served_model_name]
            anonymous = httpx.post(f"{base}/v1/completions", timeout=10,
                                   json={"model": spec.served_model_name, "prompt": "x", "max_tokens": 1})
            assert anonymous.status_code == 401
        assert not any(API_KEY in cmd for _, cmd in fake_gpu_host.processes()), "the key is in no command line"
        assert API_KEY not in fake_gpu_host.docker("inspect", f"keyed-{engine}").stdout
        assert files_holding(fake_gpu_host, API_KEY) == []
    finally:
        docker.remove(f"keyed-{engine}", stop_timeout=1)


def test_a_restarted_engine_stops_instead_of_serving_without_its_key(fake_gpu_host: FakeGpuHost,
                                                                    session: SshSession) -> None:
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True, public=True))
    engine = DockerEngine(session)
    engine.run_engine(spec, secrets={"VLLM_API_KEY": API_KEY}, name="restarted", host_port=8100)
    try:
        assert wait_until(lambda: "READY" in engine.logs("restarted"), timeout=30)
        fake_gpu_host.docker("restart", "--time", "1", "restarted")
        assert wait_until(lambda: "gpuctl: no secrets on stdin" in engine.logs("restarted", tail=1), timeout=30)
        assert wait_until(lambda: getattr(engine.inspect("restarted"), "status", None) == "exited")
        state = engine.inspect("restarted")
        assert state is not None and state.exit_code == 97
    finally:
        engine.remove("restarted", stop_timeout=1)


def test_crashing_engine_fails_health_at_once_with_its_logs(fake_gpu_host: FakeGpuHost, session: SshSession,
                                                            fakehost_env: FakeHostEnv) -> None:
    engine = DockerEngine(session)
    engine.run_container(fakehost_env.image, ["serve", "org/broken"], name="crasher",
                         options=["-e", "FAKE_ENGINE_EXIT=3 torch.OutOfMemoryError: CUDA out of memory"])

    def exited() -> str | None:
        state = engine.inspect("crasher")
        return None if state is None or state.running else f"exited with code {state.exit_code}"

    try:
        started = time.monotonic()
        with pytest.raises(EngineHealthError) as caught:
            wait_for_engine("http://127.0.0.1:9", timeout=60, interval=0.1, exited=exited,
                            log_tail=lambda: engine.logs("crasher", tail=20))
        assert time.monotonic() - started < 15, "noticed within seconds, not at the health timeout"
    finally:
        assert engine.remove("crasher", stop_timeout=1) is True
    error = caught.value
    assert error.exit_code == ExitCode.HEALTH
    assert "stopped before it became healthy (exited with code 3)" in error.message
    assert error.message.endswith("last log line: torch.OutOfMemoryError: CUDA out of memory")
    assert error.log_tail == "torch.OutOfMemoryError: CUDA out of memory\n"
    assert engine.inspect("crasher") is None
    assert engine.remove("crasher") is False
