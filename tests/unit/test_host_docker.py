"""The docker layer against an in-process Engine API: containers as created, secrets only on stdin, errors mapped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.errors import ExitCode, NotFoundError, UsageError
from gpuctl.events import LayerProgress, NullReporter
from gpuctl.host.docker import (
    ENTRY,
    ENTRY_SCRIPT,
    NO_SECRETS_EXIT,
    ContainerSpec,
    DockerEngine,
    parse_inspect,
    secret_flags_command,
    stdin_payload,
)
from gpuctl.host.dockerapi import DockerUnavailable
from gpuctl.host.errors import HostError
from gpuctl.host.labels import host_labels
from gpuctl.host.pull import PullTracker
from gpuctl.host.shell import LocalShell
from gpuctl.models.engine import EngineOptions, EngineSpec
from gpuctl.recipes import resolve_model
from tests.fakehost.dockerapi import FakeContainer, FakeDockerApi
from tests.fakehost.shells import ScriptedShell

HF = "hf_UNITtestTOKEN0123456789"
KEY = "sk-unit-API-KEY-9876543210"
SECRETS = (HF, KEY)


@pytest.fixture
def spec() -> EngineSpec:
    return build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions(api_key=True, hf_token=True))


@pytest.fixture
def api(spec: EngineSpec) -> FakeDockerApi:
    daemon = FakeDockerApi()
    daemon.add_image(spec.image, entrypoint=["/usr/bin/tini"], cmd=["--help"])
    return daemon


def _shell(api: FakeDockerApi, sudo: bool = False) -> ScriptedShell:
    return ScriptedShell().with_docker(api, sudo=sudo)


def _no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def test_stdin_payload_format_and_validation() -> None:
    assert stdin_payload({"HF_TOKEN": HF, "VLLM_API_KEY": "a=b c"}, b"{}") == (
        f"HF_TOKEN={HF}\nVLLM_API_KEY=a=b c\n\n{{}}".encode())
    assert stdin_payload({}) == b"\n"
    with pytest.raises(UsageError, match="line break"):
        stdin_payload({"HF_TOKEN": "one\ntwo"})
    with pytest.raises(UsageError, match="not a valid environment variable name"):
        stdin_payload({"BAD-NAME": "x"})


def test_the_entry_command_exports_the_secrets_and_leaves_the_rest_of_stdin(tmp_path: Path) -> None:
    # the marker of a first start is the container's /tmp/.gpuctl-started; here the test's own directory
    script = ENTRY_SCRIPT.replace("/tmp/.gpuctl-started", str(tmp_path / "started"))
    payload = stdin_payload({"A": "x y $HOME", "B": "-n"}, b"the job\n")
    shown = subprocess.run(["sh", "-c", script, "gpuctl-entry", "sh", "-c", 'echo "$A|$B"; cat'],
                           input=payload, capture_output=True, check=True)
    assert shown.stdout == b"x y $HOME|-n\nthe job\n"
    again = subprocess.run(["sh", "-c", script, "gpuctl-entry", "true"], input=payload, capture_output=True)
    assert again.returncode == NO_SECRETS_EXIT
    assert b"the container was started again" in again.stderr
    (tmp_path / "started").unlink()
    cut_short = subprocess.run(["sh", "-c", script, "gpuctl-entry", "true"], input=b"A=1\n", capture_output=True)
    assert (cut_short.returncode, cut_short.stderr) == (NO_SECRETS_EXIT, b"gpuctl: no secrets on stdin\n")


def test_run_engine_passes_secrets_only_through_stdin(api: FakeDockerApi, spec: EngineSpec) -> None:
    shell = _shell(api)
    labels = host_labels("engine", project="p1", deployment="qwen", token="gpuctl-t1")
    container = DockerEngine(shell).run_engine(
        spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY, "OTHER": "x"}, name="gpuctl-qwen",
        cache_dir="/var/lib/gpuctl/hf-cache", labels=labels)
    created = api.containers[container]
    assert created.name == "gpuctl-qwen" and created.status == "running"
    assert created.stdin == f"HF_TOKEN={HF}\nVLLM_API_KEY={KEY}\n\n".encode()
    config = created.config
    assert config["Entrypoint"] == ENTRY
    assert config["Cmd"] == [*(spec.entrypoint or []), *spec.args]
    assert config["OpenStdin"] is True and config["StdinOnce"] is True and config["Tty"] is False
    assert config["Labels"] == labels
    assert sorted(config["Env"]) == sorted(f"{k}={v}" for k, v in spec.env.items())
    host_config = created.host_config
    assert host_config["Binds"] == [f"/var/lib/gpuctl/hf-cache:{spec.cache_mount}"]
    assert host_config["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}
    assert host_config["ShmSize"] == 8 * 1024**3
    assert host_config["DeviceRequests"][0]["Count"] == -1
    for method, path, body in api.requests:
        assert _no_secret_in(path) and _no_secret_in(body.decode(errors="replace")), (method, path)
    assert shell.calls == [], "nothing ran as a command: only the API was used"
    assert shell.dialed[0] == ["docker", "system", "dial-stdio"]


def test_without_an_entrypoint_the_image_one_is_kept(api: FakeDockerApi, spec: EngineSpec) -> None:
    tgi_like = spec.model_copy(update={"entrypoint": None, "args": ["--model-id", "m"]})
    container = DockerEngine(_shell(api)).run_engine(tgi_like, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert api.containers[container].config["Cmd"] == ["/usr/bin/tini", "--model-id", "m"]


def test_a_secret_taken_as_a_flag_is_appended_inside_python(tmp_path: Path) -> None:
    command = secret_flags_command(["python3", "-m", "probe", "--port", "30000"], {"--api-key": "SGLANG_API_KEY"})
    assert command[:2] == ["python3", "-c"] and command[3:] == ["probe", "--port", "30000"]
    assert KEY not in " ".join(command)
    (tmp_path / "probe.py").write_text("import json, os, sys\n"
                                       "print(json.dumps([sys.argv[1:], 'SGLANG_API_KEY' in os.environ]))\n")
    ran = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"SGLANG_API_KEY": KEY, "PYTHONPATH": str(tmp_path)})
    assert json.loads(ran.stdout) == [["--port", "30000", "--api-key", KEY], False]
    with pytest.raises(UsageError, match="'python3 -m MODULE'"):
        secret_flags_command(["text-generation-launcher", "--port", "80"], {"--api-key": "K"})


def test_an_engine_with_a_secret_flag_runs_through_the_python_boot(api: FakeDockerApi, spec: EngineSpec) -> None:
    sglang_like = spec.model_copy(update={"entrypoint": ["python3", "-m", "sglang.launch_server"],
                                          "secret_env": [], "secret_flags": {"--api-key": "SGLANG_API_KEY"}})
    with pytest.raises(UsageError, match="SGLANG_API_KEY"):
        DockerEngine(_shell(api)).run_engine(sglang_like, secrets={})
    container = DockerEngine(_shell(api)).run_engine(sglang_like, secrets={"SGLANG_API_KEY": KEY})
    created = api.containers[container]
    assert created.config["Cmd"][:2] == ["python3", "-c"] and created.config["Cmd"][3] == "sglang.launch_server"
    assert created.stdin == f"SGLANG_API_KEY={KEY}\n\n".encode()
    assert _no_secret_in(json.dumps(created.config))


def test_start_returns_once_the_secrets_were_read_even_if_the_attach_stays_open(api: FakeDockerApi,
                                                                                spec: EngineSpec) -> None:
    api.hold_attach = True
    started = time.monotonic()
    container = DockerEngine(_shell(api)).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert time.monotonic() - started < 5
    assert api.containers[container].stdin == f"HF_TOKEN={HF}\nVLLM_API_KEY={KEY}\n\n".encode()


def test_missing_secret_is_refused_before_anything_runs(spec: EngineSpec) -> None:
    shell = ScriptedShell()
    with pytest.raises(UsageError, match="VLLM_API_KEY"):
        DockerEngine(shell).run_engine(spec, secrets={"HF_TOKEN": HF})
    assert shell.calls == [] and shell.dialed == []


class Layers(NullReporter):
    def __init__(self) -> None:
        self.seen: list[tuple[str, LayerProgress]] = []

    @contextmanager
    def layers(self, message: str) -> Iterator:
        yield lambda layer: self.seen.append((message, layer))


def test_an_absent_image_is_pulled_with_layer_progress(spec: EngineSpec) -> None:
    api = FakeDockerApi()
    api.pull_events[spec.image] = [
        {"status": "Pulling from vllm/vllm-openai", "id": "v0.11.0"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
        {"status": "Already exists", "progressDetail": {}, "id": "bbb"},
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "aaa"},
        {"status": "Downloading", "progressDetail": {"current": 100, "total": 100}, "id": "aaa"},
        {"status": "Download complete", "progressDetail": {}, "id": "aaa"},
        {"status": "Extracting", "progressDetail": {"current": 50, "total": 100}, "id": "aaa"},
        {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
        {"status": "Status: Downloaded newer image for vllm/vllm-openai:v0.11.0"},
    ]
    reporter = Layers()
    DockerEngine(_shell(api)).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY}, reporter=reporter)
    assert {message for message, _ in reporter.seen} == {f"pulling {spec.image} on test@host:22"}
    assert [(layer.layer, layer.phase, layer.done_bytes, layer.total_bytes) for _, layer in reporter.seen] == [
        ("aaa", "waiting", 0, None), ("bbb", "cached", 0, None), ("aaa", "downloading", 10, 100),
        ("aaa", "downloading", 100, 100), ("aaa", "extracting", 100, 100), ("aaa", "done", 100, 100)]


def test_a_failed_pull_is_one_line_naming_the_image(spec: EngineSpec) -> None:
    api = FakeDockerApi()
    api.pull_events[spec.image] = [{"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}]
    with pytest.raises(HostError) as caught:
        DockerEngine(_shell(api)).pull(spec.image)
    assert caught.value.message == f"docker pull {spec.image} failed on test@host:22: manifest unknown"


def test_pull_tracker_reports_only_changes() -> None:
    tracker = PullTracker()
    assert tracker.feed({"status": "Digest: sha256:abc"}) is None
    assert tracker.feed({"status": "Waiting", "id": "l1"}) == LayerProgress("l1", "waiting")
    assert tracker.feed({"status": "Waiting", "id": "l1"}) is None
    assert tracker.feed({"status": "Extracting", "progressDetail": {"current": 1, "total": 32}, "id": "l1"}) == (
        LayerProgress("l1", "extracting", 32, 32))


def test_a_name_in_use_is_refused_and_replace_removes_the_old_one_first(api: FakeDockerApi, spec: EngineSpec) -> None:
    engine = DockerEngine(_shell(api))
    first = engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    with pytest.raises(HostError) as caught:
        engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert caught.value.message == "a container named 'gpuctl-engine' already exists on test@host:22"
    second = engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY}, replace=True)
    assert list(api.containers) == [second] and second != first
    verbs = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in api.requests if p.startswith("/containers/") and m != "GET"]
    assert verbs[-5:] == [("POST", "stop"), ("DELETE", "gpuctl-engine"), ("POST", "create"), ("POST", "attach"),
                          ("POST", "start")]


def test_a_container_that_cannot_start_is_removed(api: FakeDockerApi, spec: EngineSpec) -> None:
    def refuse(container: FakeContainer) -> None:
        raise OSError("the runtime refused")  # the daemon drops the connection mid-request

    api.on_start = refuse
    with pytest.raises(HostError, match="starting the container gpuctl-engine failed on test@host:22"):
        DockerEngine(_shell(api)).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert api.containers == {}


def test_sudo_dials_through_sudo(api: FakeDockerApi, spec: EngineSpec) -> None:
    shell = _shell(api, sudo=True)
    DockerEngine(shell, sudo=True).run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    assert shell.dialed == [["sudo", "-n", "docker", "system", "dial-stdio"]]


def test_run_container_takes_the_docker_run_flags_gpuctl_uses(api: FakeDockerApi) -> None:
    api.add_image("busybox:1", cmd=["sh"])
    engine = DockerEngine(_shell(api))
    container = engine.run_container("busybox:1", ["sleep", "1"], name="probe",
                                     options=["--rm", "-e", "A=1", "--volume", "/c:/d:ro", "--network", "host",
                                              "-l", "x=y"], labels={"z": "w"})
    created = api.containers[container]
    assert (created.config["Cmd"], created.config["Env"], created.config["Labels"]) == (
        ["sleep", "1"], ["A=1"], {"x": "y", "z": "w"})
    assert created.config.get("Entrypoint") is None and created.config["OpenStdin"] is False
    assert (created.host_config["AutoRemove"], created.host_config["Binds"], created.host_config["NetworkMode"]) == (
        True, ["/c:/d:ro"], "host")
    with pytest.raises(UsageError, match="--privileged is not supported"):
        engine.run_container("busybox:1", name="x", options=["--privileged", "true"])


def test_start_copies_files_in_and_passes_stdin_after_the_secrets(api: FakeDockerApi) -> None:
    api.add_image("py:1", cmd=["python3"])
    spec = ContainerSpec(image="py:1", entrypoint=["python3"], command=["/gpuctl/x.py"],
                         files={"/gpuctl/x.py": b"print(1)\n"})
    container = DockerEngine(_shell(api)).start(spec, name="f", secrets={"HF_TOKEN": HF}, stdin=b'{"job": 1}')
    created = api.containers[container]
    assert created.files == {"/gpuctl/x.py": b"print(1)\n"}
    assert created.stdin == f'HF_TOKEN={HF}\n\n{{"job": 1}}'.encode()
    assert created.config["Cmd"] == ["python3", "/gpuctl/x.py"]


INSPECT = [{
    "Id": "4f2a" * 16, "Name": "/gpuctl-engine", "Path": "vllm", "Args": ["serve", "Qwen/Qwen2.5-7B-Instruct"],
    "RestartCount": 2,
    "State": {"Status": "exited", "Running": False, "ExitCode": 137, "Error": "", "OOMKilled": True,
              "StartedAt": "2026-01-01T00:00:00Z", "FinishedAt": "2026-01-01T00:01:00Z"},
    "Config": {"Image": "vllm/vllm-openai:v0.11.0", "Labels": {"gpuctl-role": "engine"}},
    "NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}], "9000/tcp": None}},
}]


def test_parse_inspect() -> None:
    state = parse_inspect(json.dumps(INSPECT))
    assert (state.name, state.status, state.running, state.exit_code, state.error, state.oom_killed) == (
        "gpuctl-engine", "exited", False, 137, None, True)
    assert (state.restart_count, state.labels) == (2, {"gpuctl-role": "engine"})
    assert state.ports == {"8000/tcp": ["127.0.0.1:8000"], "9000/tcp": []}
    assert (state.path, state.args) == ("vllm", ["serve", "Qwen/Qwen2.5-7B-Instruct"])


def test_inspect_missing_container_is_none_and_remove_reports_it(api: FakeDockerApi) -> None:
    engine = DockerEngine(_shell(api))
    assert engine.inspect("gpuctl-engine") is None
    assert engine.remove("gpuctl-engine") is False


def test_logs_in_order_and_missing_container_is_not_found(api: FakeDockerApi, spec: EngineSpec) -> None:
    engine = DockerEngine(_shell(api))
    engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY})
    (container,) = api.containers.values()
    container.logs = [(1, b"line 1\n"), (2, b"warn 2\n"), (1, b"line 3\n")]
    assert engine.logs("gpuctl-engine", tail=2) == "warn 2\nline 3\n"
    assert list(engine.follow_logs("gpuctl-engine", tail=None)) == ["line 1", "warn 2", "line 3"]
    with pytest.raises(NotFoundError) as caught:
        engine.logs("x")
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    assert caught.value.message == "no container 'x' on test@host:22"


def test_containers_by_label(api: FakeDockerApi, spec: EngineSpec) -> None:
    engine = DockerEngine(_shell(api))
    engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY}, name="a",
                      labels=host_labels("engine", project="p1", token="t1"))
    engine.run_engine(spec, secrets={"HF_TOKEN": HF, "VLLM_API_KEY": KEY}, name="b",
                      labels=host_labels("engine", project="p2", token="t2"))
    assert [s.name for s in engine.containers({"gpuctl-project": "p2"})] == ["b"]
    assert [s.name for s in engine.containers({"gpuctl": "managed"})] == ["a", "b"]


def test_info_reports_a_daemon_that_does_not_answer(api: FakeDockerApi) -> None:
    api.info = {"ServerVersion": "", "ServerErrors": ["Cannot connect to the Docker daemon"]}
    with pytest.raises(HostError, match="Cannot connect to the Docker daemon"):
        DockerEngine(_shell(api)).info()
    up = FakeDockerApi(runtimes=("runc", "nvidia"))
    info = DockerEngine(_shell(up)).info()
    assert (info.server_version, info.runtimes, info.default_runtime) == ("27.3.1", ["nvidia", "runc"], "runc")


@pytest.mark.parametrize(("failure", "reason", "message"), [
    ("exit 127: bash: docker: command not found", "missing", "docker is not installed on test@host:22"),
    ("exit 1: permission denied while trying to connect to the Docker daemon socket", "denied",
     "the login user may not use docker on test@host:22"),
    ("exit 1: failed to open the raw stream connection: dial unix /var/run/docker.sock: connect: no such file or "
     "directory", "down", "no docker daemon socket on test@host:22"),
    ("exit 1: Cannot connect to the Docker daemon at unix:///var/run/docker.sock", "down",
     "the docker daemon on test@host:22 does not answer"),
])
def test_why_docker_cannot_be_reached(failure: str, reason: str, message: str) -> None:
    with pytest.raises(DockerUnavailable) as caught:
        DockerEngine(_shell(FakeDockerApi(failure=failure))).info()
    assert caught.value.reason == reason
    assert caught.value.message.startswith(message) and failure in caught.value.message
    assert caught.value.exit_code == ExitCode.PROVIDER


def test_a_refused_sudo_is_denied() -> None:
    shell = ScriptedShell().with_docker(FakeDockerApi(failure="exit 1: sudo: a password is required"), sudo=True)
    with pytest.raises(DockerUnavailable) as caught:
        DockerEngine(shell, sudo=True).info()
    assert (caught.value.reason, caught.value.message) == (
        "denied", "'sudo -n docker' is refused on test@host:22 (exit 1: sudo: a password is required)")


def test_a_local_stream_is_a_process_and_its_failure_is_its_stderr() -> None:
    dialer = LocalShell().dial(["cat"])
    stream = dialer.open(5)
    stream.sendall(b"ping")
    assert stream.recv(4) == b"ping"
    dialer.close()
    failing = LocalShell().dial(["sh", "-c", "echo nope >&2; exit 3"])
    failing.open(5).recv(1)
    assert failing.failure() == "exit 3: nope"
    failing.close()
