"""Docker on a GPU host: run the engine container, inspect it, read its logs, remove it.

Why the docker CLI over the SSH session rather than docker-py over ``ssh://``: the SSH connection
gpuctl already holds (with its pinned host key) is reused; docker-py's ssh transport opens its own
connection and applies its own host-key rules from ``~/.ssh``. No docker client or engine is needed
on the user's machine, ``--env-file`` is read on the host itself (so secret values cross the wire
only inside an SFTP upload, never in a command line), and the same code drives ``--host local``
through :class:`gpuctl.host.shell.LocalShell`.

Secrets: the values go into an env file created 0600 in a private directory (``~/.gpuctl`` on a
remote host, a private temp file locally), handed to ``docker run --env-file`` and deleted as soon
as the container exists. They never appear in an argv (``ps``), a log line or the state file; docker
itself keeps them in the container's configuration, readable only to those who control the engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from pydantic import BaseModel, Field

from gpuctl.errors import NotFoundError, UsageError
from gpuctl.events import NullReporter, Reporter
from gpuctl.host.errors import HostError
from gpuctl.host.shell import CommandResult, Shell
from gpuctl.models.engine import CONTAINER_NAME, HOST_CACHE_DIR, EngineSpec

PULL_TIMEOUT_S = 1800.0  # an engine image is 5-10 GB
STOP_TIMEOUT_S = 30
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_CONTAINER = re.compile(r"no such (container|object)", re.IGNORECASE)


class DockerInfo(BaseModel):
    server_version: str
    runtimes: list[str] = Field(default_factory=list)
    default_runtime: str | None = None


class ContainerState(BaseModel):
    """What ``docker inspect`` says about a container, reduced to what gpuctl acts on."""

    id: str
    name: str
    image: str
    status: str = Field(description="created, running, restarting, exited, dead, ...")
    running: bool
    exit_code: int | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    path: str = ""
    args: list[str] = Field(default_factory=list)
    ports: dict[str, list[str]] = Field(default_factory=dict, description="'8000/tcp' -> ['127.0.0.1:8000']")


def env_file_text(values: Mapping[str, str]) -> bytes:
    """The ``--env-file`` body; docker takes each value literally up to the end of its line."""
    lines = []
    for name, value in values.items():
        if not _ENV_NAME.match(name):
            raise UsageError(f"'{name}' is not a valid environment variable name")
        if "\n" in value or "\r" in value or "\0" in value:
            raise UsageError(f"the value of {name} contains a line break, which an env file cannot carry")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode("utf-8")


def parse_inspect(text: str) -> ContainerState:
    """One container from ``docker inspect`` output (a JSON list)."""
    data = json.loads(text)[0]
    state = data.get("State") or {}
    ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
    return ContainerState(
        id=data["Id"], name=data.get("Name", "").lstrip("/"), image=(data.get("Config") or {}).get("Image", ""),
        status=state.get("Status", "unknown"), running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"), error=state.get("Error") or None,
        started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
        restart_count=data.get("RestartCount", 0), path=data.get("Path", ""), args=data.get("Args") or [],
        ports={port: [f"{b.get('HostIp', '')}:{b.get('HostPort', '')}" for b in bindings or []]
               for port, bindings in ports.items()},
    )


class DockerEngine:
    """The docker engine of one host, driven through its docker CLI."""

    def __init__(self, shell: Shell, *, sudo: bool = False) -> None:
        self.shell = shell
        self.prefix = ["sudo", "-n", "docker"] if sudo else ["docker"]

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        return self.shell.run([*self.prefix, *args], input=input, timeout=timeout)

    def info(self) -> DockerInfo:
        """Server version and runtimes; HostError when the daemon does not answer."""
        result = self.docker("info", "--format", "{{json .}}").check("docker info", self.shell.where)
        data = json.loads(result.stdout)
        if not data.get("ServerVersion"):
            errors = "; ".join(data.get("ServerErrors") or []) or "no server version"
            raise HostError(f"the docker daemon on {self.shell.where} does not answer: {errors}")
        return DockerInfo(server_version=data["ServerVersion"], runtimes=sorted(data.get("Runtimes") or {}),
                          default_runtime=data.get("DefaultRuntime"))

    def has_image(self, image: str) -> bool:
        return self.docker("image", "inspect", "--format", "{{.Id}}", image).ok

    def pull(self, image: str, timeout: float = PULL_TIMEOUT_S) -> None:
        self.docker("pull", "--quiet", image, timeout=timeout).check(f"docker pull {image}", self.shell.where)

    def run_engine(
        self,
        spec: EngineSpec,
        *,
        secrets: Mapping[str, str],
        name: str = CONTAINER_NAME,
        host_port: int = 8000,
        cache_dir: str = HOST_CACHE_DIR,
        replace: bool = False,
        reporter: Reporter | None = None,
    ) -> str:
        """Start the engine container described by ``spec``; returns the container id.

        ``secrets`` must hold a value for every name in ``spec.secret_env``.
        """
        missing = [n for n in spec.secret_env if n not in secrets]
        if missing:
            raise UsageError(f"no value for the secret(s) {', '.join(missing)} the engine needs")
        self._ensure_image(spec.image, reporter or NullReporter())
        with self._env_file({n: secrets[n] for n in spec.secret_env}) as env_file:
            argv = spec.docker_run_argv(name=name, cache_dir=cache_dir, env_file=env_file or "", host_port=host_port)
            return self._run(argv[1:], name, replace)

    def run_container(
        self,
        image: str,
        command: Sequence[str] = (),
        *,
        name: str,
        options: Sequence[str] = (),
        secrets: Mapping[str, str] | None = None,
        replace: bool = False,
        reporter: Reporter | None = None,
    ) -> str:
        """Start any container detached (``options`` are docker run flags); returns its id."""
        self._ensure_image(image, reporter or NullReporter())
        with self._env_file(secrets or {}) as env_file:
            env = ["--env-file", env_file] if env_file else []
            return self._run(["run", "--detach", "--name", name, *options, *env, image, *command], name, replace)

    def inspect(self, name: str) -> ContainerState | None:
        """The container's state, or None when there is no such container."""
        result = self.docker("container", "inspect", name)
        if not result.ok:
            if _NO_CONTAINER.search(result.stderr):
                return None
            result.check(f"docker inspect {name}", self.shell.where)
        return parse_inspect(result.stdout)

    def logs(self, name: str, tail: int | None = 200) -> str:
        """The container's output (stdout and stderr interleaved by docker), the last ``tail`` lines."""
        # docker replays the container's stderr on its own stderr: merge them on the host, in order
        argv = ["sh", "-c", 'exec "$@" 2>&1', "sh", *self.prefix, "logs", *self._tail(tail), name]
        result = self.shell.run(argv, timeout=120)
        if not result.ok and _NO_CONTAINER.search(result.stdout):
            raise NotFoundError(f"no container '{name}' on {self.shell.where}")
        result.check(f"docker logs {name}", self.shell.where)
        return result.stdout

    def follow_logs(self, name: str, tail: int | None = 50) -> Iterator[str]:
        """Log lines as they are written, until the container stops or the iterator is closed."""
        return self.shell.stream([*self.prefix, "logs", "--follow", *self._tail(tail), name])

    def remove(self, name: str, stop_timeout: int = STOP_TIMEOUT_S) -> bool:
        """Stop (SIGTERM, then SIGKILL after ``stop_timeout``) and remove; False when it did not exist."""
        stop = self.docker("stop", "--time", str(stop_timeout), name, timeout=stop_timeout + 60)
        if not stop.ok and _NO_CONTAINER.search(stop.stderr):
            return False
        removed = self.docker("rm", "--force", name)
        if not removed.ok and not _NO_CONTAINER.search(removed.stderr):
            removed.check(f"docker rm {name}", self.shell.where)
        return True

    @staticmethod
    def _tail(tail: int | None) -> list[str]:
        return ["--tail", str(tail)] if tail is not None else []

    def _ensure_image(self, image: str, reporter: Reporter) -> None:
        if not self.has_image(image):
            with reporter.step(f"pulling {image} on {self.shell.where}"):
                self.pull(image)

    def _run(self, args: list[str], name: str, replace: bool) -> str:
        if replace:
            self.remove(name)
        result = self.docker(*args, timeout=120)
        if not result.ok and "is already in use" in result.stderr:
            raise HostError(f"a container named '{name}' already exists on {self.shell.where}",
                            "remove it first ('gpuctl down NAME'), or redeploy with replace")
        result.check(f"docker run {name}", self.shell.where)
        return result.stdout.strip().splitlines()[-1]

    @contextmanager
    def _env_file(self, values: Mapping[str, str]) -> Iterator[str | None]:
        if not values:
            yield None
            return
        path = self.shell.write_secret_file(env_file_text(values), "engine.env")
        try:
            yield path
        finally:
            self.shell.remove_file(path)
