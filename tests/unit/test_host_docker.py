"""The docker layer against a scripted shell: argv built, env file handled, errors mapped."""

from __future__ import annotations

import json

import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.errors import ExitCode, NotFoundError, UsageError
from gpuctl.host.docker import DockerEngine, env_file_text, parse_inspect
from gpuctl.host.errors import HostError
from gpuctl.models.engine import EngineOptions, EngineSpec
from gpuctl.recipes import resolve_model
from tests.fakehost.shells import ScriptedShell

HF = "hf_UNITtestTOKEN0123456789"
KEY = "sk-unit-API-KEY-9876543210"
CONTAINER_ID = "4f2a" * 16


@pytest.fixture
def spec() -> EngineSpec:
    return build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True, hf_token=True))


def _engine_shell() -> ScriptedShell:
    return (ScriptedShell()
            .on("docker", "image", "inspect", stdout="sha256:abc\n")
            .on("docker", "run", stdout=CONTAINER_ID + "\n"))


def test_env_file_format_and_validation() -> None:
    assert env_file_text({"HF_TOKEN": HF, "VLLM_API_KEY": "a=b c"}) == f"HF_TOKEN={HF}\nVLLM_API_KEY=a=b c\n".encode()
    with pytest.raises(UsageError, match="line break"):
        env_file_text({"HF_TOKEN": "one\ntwo"})
    with pytest.raises(UsageError, match="not a valid environment variable name"):
        env_file_text({"BAD-NAME": "x"})


def test_run_engine_passes_secrets_only_through_the_env_file(spec: EngineSpec) -> None:
    shell = _engine_shell()
    container = DockerEngine(shell).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY, "OTHER": "x"},
                                               name="gpuctl-qwen", cache_dir="/var/lib/gpuctl/hf-cache")
    assert container == CONTAINER_ID
    (env_path, body), = shell.files.items()
    assert body == f"HF_TOKEN={HF}\nVLLM_API_KEY={KEY}\n".encode()
    assert shell.removed == [env_path]
    run = next(argv for argv in shell.argvs() if argv[:2] == ["docker", "run"])
    assert run == spec.docker_run_argv(name="gpuctl-qwen", env_file=env_path, cache_dir="/var/lib/gpuctl/hf-cache")
    for call in shell.calls:
        assert all(HF not in word and KEY not in word for word in call.argv)
        assert call.input is None


def test_missing_secret_is_refused_before_anything_runs(spec: EngineSpec) -> None:
    shell = _engine_shell()
    with pytest.raises(UsageError, match="VLLM_API_KEY"):
        DockerEngine(shell).run_engine(spec, secrets={"HF_TOKEN": HF})
    assert shell.calls == []


def test_image_is_pulled_when_absent_and_the_env_file_removed_on_failure(spec: EngineSpec) -> None:
    shell = (ScriptedShell()
             .on("docker", "image", "inspect", exit_code=1, stderr="Error: No such image")
             .on("docker", "pull", stdout="vllm/vllm-openai:v0.11.0\n")
             .on("docker", "run", exit_code=125, stderr="docker: Error response from daemon: Conflict. The "
                 'container name "/gpuctl-engine" is already in use by container "abc".'))
    with pytest.raises(HostError) as caught:
        DockerEngine(shell).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert "already exists" in caught.value.message
    assert ["docker", "pull", "--quiet", spec.image] in shell.argvs()
    assert shell.removed == list(shell.files)


def test_replace_removes_the_old_container_first(spec: EngineSpec) -> None:
    shell = _engine_shell().on("docker", "stop", stdout="gpuctl-engine\n").on("docker", "rm", stdout="x\n")
    DockerEngine(shell).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY}, replace=True)
    verbs = [argv[1] for argv in shell.argvs() if argv[0] == "docker"]
    assert verbs == ["image", "stop", "rm", "run"]


def test_sudo_prefix_applies_to_every_docker_command(spec: EngineSpec) -> None:
    shell = (ScriptedShell().on("sudo", "-n", "docker", "image", "inspect", stdout="x")
             .on("sudo", "-n", "docker", "run", stdout=CONTAINER_ID))
    DockerEngine(shell, sudo=True).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert all(argv[:3] == ["sudo", "-n", "docker"] for argv in shell.argvs())


def test_run_container_without_secrets_writes_no_file() -> None:
    shell = _engine_shell()
    DockerEngine(shell).run_container("busybox:1", ["sleep", "1"], name="probe", options=["--rm"])
    assert shell.files == {}
    assert shell.argvs()[-1] == ["docker", "run", "--detach", "--name", "probe", "--rm", "busybox:1", "sleep", "1"]


INSPECT = [{
    "Id": CONTAINER_ID, "Name": "/gpuctl-engine", "Path": "vllm", "Args": ["serve", "Qwen/Qwen2.5-7B-Instruct"],
    "RestartCount": 0,
    "State": {"Status": "exited", "Running": False, "ExitCode": 1, "Error": "", "StartedAt": "2026-01-01T00:00:00Z",
              "FinishedAt": "2026-01-01T00:01:00Z"},
    "Config": {"Image": "vllm/vllm-openai:v0.11.0"},
    "NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}], "9000/tcp": None}},
}]


def test_parse_inspect() -> None:
    state = parse_inspect(json.dumps(INSPECT))
    assert (state.name, state.status, state.running, state.exit_code, state.error) == (
        "gpuctl-engine", "exited", False, 1, None)
    assert state.ports == {"8000/tcp": ["127.0.0.1:8000"], "9000/tcp": []}
    assert (state.path, state.args) == ("vllm", ["serve", "Qwen/Qwen2.5-7B-Instruct"])


def test_inspect_missing_container_is_none_and_remove_reports_it() -> None:
    missing = "Error: No such container: gpuctl-engine"
    shell = (ScriptedShell().on("docker", "container", "inspect", exit_code=1, stderr=missing)
             .on("docker", "stop", exit_code=1, stderr=f"Error response from daemon: {missing}"))
    engine = DockerEngine(shell)
    assert engine.inspect("gpuctl-engine") is None
    assert engine.remove("gpuctl-engine") is False


def test_logs_merge_streams_on_the_host_and_missing_container_is_not_found() -> None:
    shell = ScriptedShell().on("sh", "-c", stdout="line 1\nline 2\n")
    assert DockerEngine(shell).logs("gpuctl-engine", tail=2) == "line 1\nline 2\n"
    assert shell.argvs() == [["sh", "-c", 'exec "$@" 2>&1', "sh", "docker", "logs", "--tail", "2", "gpuctl-engine"]]
    gone = ScriptedShell().on("sh", "-c", exit_code=1, stdout="Error: No such container: x\n")
    with pytest.raises(NotFoundError) as caught:
        DockerEngine(gone).logs("x")
    assert caught.value.exit_code == ExitCode.NOT_FOUND


def test_info_reports_a_daemon_that_does_not_answer() -> None:
    down = json.dumps({"ServerVersion": "", "ServerErrors": ["Cannot connect to the Docker daemon at "
                                                             "unix:///var/run/docker.sock."]})
    shell = ScriptedShell().on("docker", "info", stdout=down)
    with pytest.raises(HostError, match="Cannot connect to the Docker daemon"):
        DockerEngine(shell).info()
    up = json.dumps({"ServerVersion": "27.3.1", "Runtimes": {"runc": {}, "nvidia": {}}, "DefaultRuntime": "runc"})
    info = DockerEngine(ScriptedShell().on("docker", "info", stdout=up)).info()
    assert (info.server_version, info.runtimes, info.default_runtime) == ("27.3.1", ["nvidia", "runc"], "runc")
