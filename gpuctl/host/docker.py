"""Docker on a GPU host through docker-py: images, the engine and fetcher containers, their state and logs.

The engine's API is reached over gpuctl's own connection to the host (:mod:`gpuctl.host.dockerapi`):
this machine's daemon socket for ``--host local``, else ``docker system dial-stdio`` on an exec channel
of the SSH session gpuctl already holds with its pinned host key. Container state comes from the API
(status, exit code, OOM kill, restart count, times), never from parsing text.

Secrets never rest on the host: a container that needs them starts under a small ``/bin/sh`` entry
command that reads ``NAME=value`` lines from its stdin, exports them and execs the real command.
gpuctl attaches to the container's stdin before starting it, writes the lines and closes it. The
values are therefore in no file, no command line and not in the container's configuration (``docker
inspect``, ``config.v2.json``); only the engine process's memory holds them. A container that is
started again (``docker restart``) stops with exit 97 instead of running without its API key. An
engine that takes a secret only as a flag (SGLang's ``--api-key``) must be a ``python3 -m MODULE``
command: gpuctl then appends the flag inside the Python process, so it never shows in ``ps`` either.

Everything gpuctl starts carries labels (:mod:`gpuctl.host.labels`), so it can be found again.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from gpuctl.errors import NotFoundError, TimeoutError_, UsageError
from gpuctl.events import NullReporter, Reporter
from gpuctl.host.errors import HostError
from gpuctl.host.shell import CommandResult, Shell, decode
from gpuctl.models.engine import CONTAINER_NAME, HOST_CACHE_DIR, EngineSpec

if TYPE_CHECKING:
    import docker

PULL_TIMEOUT_S = 1800.0  # an engine image is 5-10 GB
STOP_TIMEOUT_S = 30
#: how long the daemon may take to confirm it passed the secrets on to the container's stdin
STDIN_TIMEOUT_S = 30.0
#: the exit code of a container whose secrets were not on its stdin (started a second time)
NO_SECRETS_EXIT = 97
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Reads NAME=value lines up to an empty line, exports them, execs the command; stdin past the empty line
# (a fetcher's job) is left to the command. The shell's read builtin takes a pipe byte by byte. A second
# start (docker restart) would wait on a stdin nobody writes to: a marker in the container's own
# filesystem makes it stop at once instead.
_STARTED = "/tmp/.gpuctl-started"
ENTRY_SCRIPT = (
    f'if [ -e {_STARTED} ]; then echo "gpuctl: no secrets on stdin: the container was started again; '
    f'redeploy it" >&2; exit {NO_SECRETS_EXIT}; fi; {{ : > {_STARTED}; }} 2>/dev/null; '
    'while IFS= read -r line; do [ -n "$line" ] || exec "$@"; export "$line"; done; '
    f'echo "gpuctl: no secrets on stdin" >&2; exit {NO_SECRETS_EXIT}'
)
ENTRY = ["/bin/sh", "-c", ENTRY_SCRIPT, "gpuctl-entry"]
# Runs MODULE (sys.argv[1]) as 'python3 -m' would, with FLAG VALUE pairs appended inside the process.
_FLAGS_BOOT = (
    "import os,runpy,sys\n"
    "m=sys.argv[1]\n"
    "sys.argv=[m,*sys.argv[2:]]\n"
    "for f,n in {pairs}:\n"
    "    sys.argv+=[f,os.environ.pop(n)]\n"
    "runpy.run_module(m,run_name='__main__',alter_sys=True)\n"
)


class DockerInfo(BaseModel):
    server_version: str
    runtimes: list[str] = Field(default_factory=list)
    default_runtime: str | None = None


class ContainerState(BaseModel):
    """What the engine API says about a container, reduced to what gpuctl acts on."""

    id: str
    name: str
    image: str
    status: str = Field(description="created, running, restarting, exited, dead, ...")
    running: bool
    exit_code: int | None = None
    error: str | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    path: str = ""
    args: list[str] = Field(default_factory=list)
    ports: dict[str, list[str]] = Field(default_factory=dict, description="'8000/tcp' -> ['127.0.0.1:8000']")
    labels: dict[str, str] = Field(default_factory=dict)


class ContainerSpec(BaseModel):
    """A container to start: what ``docker run`` flags would say, as data."""

    image: str
    entrypoint: list[str] | None = Field(default=None, description="replaces the image's entrypoint")
    command: list[str] = Field(default_factory=list, description="arguments after the entrypoint (else the image's)")
    env: dict[str, str] = Field(default_factory=dict, description="non-secret environment")
    binds: list[str] = Field(default_factory=list, description="'host path:container path[:ro]'")
    ports: dict[str, tuple[str, int]] = Field(default_factory=dict,
                                              description="'8000/tcp' -> (host address, host port)")
    gpus: bool = Field(default=False, description="all of the host's GPUs (--gpus all)")
    shm_size: str | None = None
    network_mode: str | None = None
    user: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    auto_remove: bool = False
    files: dict[str, bytes] = Field(default_factory=dict, repr=False,
                                    description="absolute path in the container -> content, copied in before start")
    secret_flags: dict[str, str] = Field(default_factory=dict,
                                         description="flag -> secret name, for a secret the command takes as a flag")


def parse_state(data: Mapping[str, Any]) -> ContainerState:
    """One container from the engine API's inspect answer."""
    state = data.get("State") or {}
    config = data.get("Config") or {}
    ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
    return ContainerState(
        id=data["Id"], name=str(data.get("Name", "")).lstrip("/"), image=config.get("Image", ""),
        status=state.get("Status", "unknown"), running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"), error=state.get("Error") or None, oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
        restart_count=data.get("RestartCount", 0), path=data.get("Path", ""), args=data.get("Args") or [],
        ports={port: [f"{b.get('HostIp', '')}:{b.get('HostPort', '')}" for b in bindings or []]
               for port, bindings in ports.items()},
        labels=config.get("Labels") or {},
    )


def parse_inspect(text: str) -> ContainerState:
    """One container from ``docker inspect`` output (a JSON list)."""
    return parse_state(json.loads(text)[0])


def stdin_payload(secrets: Mapping[str, str], rest: bytes = b"") -> bytes:
    """What the entry command reads: ``NAME=value`` lines, an empty line, then ``rest`` for the command itself."""
    lines = []
    for name, value in secrets.items():
        if not _ENV_NAME.match(name):
            raise UsageError(f"'{name}' is not a valid environment variable name")
        if "\n" in value or "\r" in value or "\0" in value:
            raise UsageError(f"the value of {name} contains a line break, which cannot be passed to the container")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode("utf-8") + b"\n" + rest


def secret_flags_command(command: Sequence[str], flags: Mapping[str, str]) -> list[str]:
    """``python3 -m MODULE ARGS`` made to append each ``FLAG $SECRET`` inside the Python process."""
    if len(command) < 3 or not command[0].rsplit("/", 1)[-1].startswith("python") or command[1] != "-m":
        raise UsageError(f"'{' '.join(command[:3])}' takes a secret as a flag, which gpuctl passes safely only to a "
                         "'python3 -m MODULE' command", "run the engine through 'python3 -m'")
    pairs = repr(sorted(flags.items()))
    return [command[0], "-c", _FLAGS_BOOT.format(pairs=pairs), *command[2:]]


def engine_container(spec: EngineSpec, *, cache_dir: str, host_port: int,
                     labels: Mapping[str, str] | None = None) -> ContainerSpec:
    """The container of an engine spec (what ``spec.docker_run_argv`` shows as a command line)."""
    return ContainerSpec(
        image=spec.image, entrypoint=spec.entrypoint, command=list(spec.args), env=dict(spec.env),
        binds=[f"{cache_dir}:{spec.cache_mount}"], ports={f"{spec.port}/tcp": (spec.bind_address, host_port)},
        gpus=True, shm_size=spec.shm_size, labels=dict(labels or {}), secret_flags=dict(spec.secret_flags),
    )


class DockerEngine:
    """The docker engine of one host, driven through its API (and its CLI for ``docker()`` alone).

    The API connection is opened on first use and kept; ``close()`` ends it (the SSH session's end
    does too).
    """

    def __init__(self, shell: Shell, *, sudo: bool = False) -> None:
        self.shell = shell
        self.sudo = sudo
        self.prefix = ["sudo", "-n", "docker"] if sudo else ["docker"]
        self._client: docker.APIClient | None = None

    def api(self) -> docker.APIClient:
        """docker-py's low-level client for this host (DockerUnavailable when the engine does not answer)."""
        if self._client is None:
            from gpuctl.host.dockerapi import open_client

            self._client = open_client(self.shell, sudo=self.sudo)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        """The host's docker CLI (for what the API does not cover, such as ``exec -i`` with stdin)."""
        return self.shell.run([*self.prefix, *args], input=input, timeout=timeout)

    # -- the engine --------------------------------------------------------------------------------
    def info(self) -> DockerInfo:
        """Server version and runtimes; HostError when the daemon does not answer."""
        with self._errors("docker info"):
            data = self.api().info()
        if not data.get("ServerVersion"):
            errors = "; ".join(data.get("ServerErrors") or []) or "no server version"
            raise HostError(f"the docker daemon on {self.shell.where} does not answer: {errors}")
        return DockerInfo(server_version=data["ServerVersion"], runtimes=sorted(data.get("Runtimes") or {}),
                          default_runtime=data.get("DefaultRuntime"))

    # -- images ------------------------------------------------------------------------------------
    def has_image(self, image: str) -> bool:
        try:
            with self._errors(f"inspecting the image {image}"):
                self.api().inspect_image(image)
        except NotFoundError:
            return False
        return True

    def pull(self, image: str, timeout: float = PULL_TIMEOUT_S, reporter: Reporter | None = None) -> None:
        """Pull ``image``, reporting each layer's bytes through ``reporter.layers``; bounded by ``timeout``."""
        from gpuctl.host.pull import PullTracker, pull_error

        reporter = reporter or NullReporter()
        deadline = time.monotonic() + timeout
        tracker = PullTracker()
        with reporter.layers(f"pulling {image} on {self.shell.where}") as update, self._errors(f"docker pull {image}"):
            stream = self.api().pull(image, stream=True, decode=True)
            try:
                for event in stream:
                    error = pull_error(event)
                    if error:
                        raise HostError(f"docker pull {image} failed on {self.shell.where}: {error}",
                                        "check the image name, and that the host can reach its registry")
                    layer = tracker.feed(event)
                    if layer is not None:
                        update(layer)
                    if time.monotonic() > deadline:
                        raise TimeoutError_(f"docker pull {image} on {self.shell.where} took more than {timeout:g}s")
            finally:
                stream.close()

    def _ensure_image(self, image: str, reporter: Reporter) -> None:
        if not self.has_image(image):
            self.pull(image, reporter=reporter)

    # -- containers --------------------------------------------------------------------------------
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
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start the engine container described by ``spec``; returns the container id.

        ``secrets`` must hold a value for every name in ``spec.secret_env``; they reach the engine
        through its stdin only (see the module docstring). ``labels`` add to gpuctl's (role=engine):
        pass :func:`gpuctl.host.labels.host_labels` with the deployment's project, name and token.
        """
        wanted = list(dict.fromkeys([*spec.secret_env, *spec.secret_flags.values()]))
        missing = [n for n in wanted if n not in secrets]
        if missing:
            raise UsageError(f"no value for the secret(s) {', '.join(missing)} the engine needs")
        from gpuctl.host.labels import host_labels

        container = engine_container(spec, cache_dir=cache_dir, host_port=host_port,
                                     labels={**host_labels("engine"), **(labels or {})})
        return self.start(container, name=name, secrets={n: secrets[n] for n in wanted}, replace=replace,
                          reporter=reporter)

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
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start any container detached; ``options`` are the ``docker run`` flags of :func:`spec_from_options`."""
        spec = spec_from_options(image, command, options)
        spec = spec.model_copy(update={"labels": {**spec.labels, **(labels or {})}})
        return self.start(spec, name=name, secrets=secrets, replace=replace, reporter=reporter)

    def start(
        self,
        spec: ContainerSpec,
        *,
        name: str,
        secrets: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        replace: bool = False,
        reporter: Reporter | None = None,
    ) -> str:
        """Create and start ``spec`` as ``name``; ``secrets`` and then ``stdin`` go to its stdin. Returns its id.

        A container that fails to start with its secrets is removed again.
        """
        api = self.api()
        self._ensure_image(spec.image, reporter or NullReporter())
        if replace:
            self.remove(name)
        guarded = bool(secrets) or stdin is not None or bool(spec.secret_flags)
        entrypoint, command = (ENTRY, self._guarded_command(spec)) if guarded else (spec.entrypoint,
                                                                                     spec.command or None)
        payload = stdin_payload(secrets or {}, stdin or b"") if guarded else b""
        with self._errors(f"creating the container {name}"):
            host_config = api.create_host_config(
                binds=spec.binds or None, shm_size=spec.shm_size, network_mode=spec.network_mode,
                auto_remove=spec.auto_remove, port_bindings={port: [bind] for port, bind in spec.ports.items()} or None,
                device_requests=_all_gpus() if spec.gpus else None)
            try:
                created = api.create_container(
                    spec.image, command=command, entrypoint=entrypoint, name=name, environment=spec.env or None,
                    labels=spec.labels or None, ports=[_port_proto(p) for p in spec.ports] or None,
                    host_config=host_config,
                    user=spec.user, stdin_open=guarded, detach=not guarded)
            except Exception as exc:
                if _conflict(exc):
                    raise HostError(f"a container named '{name}' already exists on {self.shell.where}",
                                    "remove it first ('gpuctl down NAME'), or redeploy with replace") from exc
                raise
        container = str(created["Id"])
        try:
            with self._errors(f"starting the container {name}"):
                if spec.files:
                    api.put_archive(container, "/", _tar(spec.files))
                if guarded:
                    self._start_with_stdin(container, payload)
                else:
                    api.start(container)
        except BaseException:
            with suppress(Exception):  # what could not start with its secrets is of no use to anyone
                api.remove_container(container, force=True)
            raise
        return container

    def _guarded_command(self, spec: ContainerSpec) -> list[str]:
        """The command the entry script execs: the image's entrypoint and command as docker would combine them."""
        if spec.entrypoint is not None:
            command = [*spec.entrypoint, *spec.command]
        else:
            with self._errors(f"inspecting the image {spec.image}"):
                config = self.api().inspect_image(spec.image).get("Config") or {}
            command = [*(config.get("Entrypoint") or []), *(spec.command or config.get("Cmd") or [])]
        if not command:
            raise UsageError(f"the image {spec.image} names no command to run, and none was given")
        return secret_flags_command(command, spec.secret_flags) if spec.secret_flags else command

    def _start_with_stdin(self, container: str, payload: bytes) -> None:
        """Attach to the stdin, start, write ``payload`` and close it; return once the entry command has read
        its part (it exec'd the real command) or the container stopped.

        The attach itself may stay open until the container stops (docker keeps a StdinOnce attach open
        while the container runs when the start overtakes the attach), so its end is not what is awaited.
        """
        api = self.api()
        stream = api.attach_socket(container, params={"stdin": 1, "stream": 1})
        end = getattr(stream, "_sock", stream)  # a SocketIO around a socket, or an SSH channel
        try:
            api.start(container)
            end.settimeout(STDIN_TIMEOUT_S)
            end.sendall(payload)
            if hasattr(end, "shutdown_write"):
                end.shutdown_write()
            else:
                import socket

                end.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + STDIN_TIMEOUT_S
            while self._entry_running(container):
                if time.monotonic() > deadline:
                    raise HostError(f"the container {container[:12]} on {self.shell.where} did not read its "
                                    f"secrets within {STDIN_TIMEOUT_S:g}s")
                time.sleep(0.05)
        finally:
            end.close()
            response = getattr(stream, "_response", None)
            if response is not None:
                response.close()

    def _entry_running(self, container: str) -> bool:
        """Whether the container still runs gpuctl's entry command (it has not exec'd the real one yet)."""
        import docker

        try:
            listing = self.api().top(container)
        except docker.errors.APIError as exc:
            if exc.status_code in (404, 409):  # gone, or not running (any more): nothing will read stdin now
                return False
            raise
        titles = listing.get("Titles") or []
        column = next((i for i, title in enumerate(titles) if title in ("CMD", "COMMAND")), len(titles) - 1)
        return any(ENTRY[-1] in str(row[column]) for row in listing.get("Processes") or [])

    def inspect(self, name: str) -> ContainerState | None:
        """The container's state, or None when there is no such container."""
        try:
            with self._errors(f"docker inspect {name}"):
                return parse_state(self.api().inspect_container(name))
        except NotFoundError:
            return None

    def containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all of ``labels``."""
        with self._errors("listing containers"):
            listed = self.api().containers(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        found = (self.inspect(str(row["Id"])) for row in listed)
        return [state for state in found if state is not None]

    def wait(self, name: str, timeout: float) -> int:
        """Wait until the container stops; its exit code."""
        with self._errors(f"waiting for {name}"):
            return int(self.api().wait(name, timeout=timeout)["StatusCode"])

    def logs(self, name: str, tail: int | None = 200) -> str:
        """The container's output (stdout and stderr in the order written), the last ``tail`` lines."""
        try:
            with self._errors(f"docker logs {name}"):
                raw = self.api().logs(name, stdout=True, stderr=True, tail=tail if tail is not None else "all")
        except NotFoundError:
            raise NotFoundError(f"no container '{name}' on {self.shell.where}") from None
        return decode(raw)

    def follow_logs(self, name: str, tail: int | None = 50) -> Generator[str, None, None]:
        """Log lines as they are written, until the container stops or the iterator is closed."""
        with self._errors(f"docker logs {name}"):
            stream = self.api().logs(name, stdout=True, stderr=True, stream=True, follow=True,
                                     tail=tail if tail is not None else "all")
        return _lines(stream)

    def remove(self, name: str, stop_timeout: int = STOP_TIMEOUT_S) -> bool:
        """Stop (SIGTERM, then SIGKILL after ``stop_timeout``) and remove; False when it did not exist."""
        api = self.api()
        try:
            with self._errors(f"docker stop {name}"):
                api.stop(name, timeout=stop_timeout)
        except NotFoundError:
            return False
        try:
            with self._errors(f"docker rm {name}"):
                api.remove_container(name, force=True)
        except NotFoundError:
            pass  # removed by docker itself (--rm) once stopped
        except HostError as exc:
            if "already in progress" not in exc.message:
                raise
        return True

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """API errors as gpuctl's: a missing object NotFoundError (3), the rest HostError (4) or TimeoutError_ (7)."""
        import docker
        import requests

        from gpuctl.host.dockerapi import TRANSPORT_ERRORS, describe

        where = self.shell.where
        try:
            yield
        except docker.errors.NotFound as exc:
            raise NotFoundError(f"{what} on {where}: {describe(exc)}") from exc
        except docker.errors.APIError as exc:
            raise HostError(f"{what} failed on {where}: {describe(exc)}") from exc
        except requests.exceptions.Timeout as exc:
            raise TimeoutError_(f"{what} on {where}: docker did not answer in time") from exc
        except TRANSPORT_ERRORS as exc:
            raise HostError(f"{what} failed on {where}: lost the connection to docker ({describe(exc)})") from exc


def docker_access(shell: Shell) -> DockerEngine:
    """The host's docker as the login user, else through ``sudo -n``.

    Raises HostCheckError (4) when neither may use it, DockerUnavailable (4; reason 'missing' or
    'down') when docker is not installed or its daemon does not answer.
    """
    from gpuctl.host.dockerapi import DockerUnavailable
    from gpuctl.host.errors import HostCheckError

    engine = DockerEngine(shell)
    try:
        engine.api()
        return engine
    except DockerUnavailable as exc:
        if exc.reason != "denied":
            raise
        elevated = DockerEngine(shell, sudo=True)
        try:
            elevated.api()
        except DockerUnavailable:
            raise HostCheckError(f"{shell.where}: the login user may not use docker, and 'sudo -n' is refused",
                                 "add the user to the docker group on the host") from exc
        return elevated


def spec_from_options(image: str, command: Sequence[str], options: Sequence[str]) -> ContainerSpec:
    """A ContainerSpec from ``docker run`` flags: --network, --entrypoint, -e/--env, -v/--volume, -u/--user,
    -l/--label (each followed by its value) and --rm."""
    fields: dict[str, Any] = {"image": image, "command": list(command), "env": {}, "binds": [], "labels": {}}
    words = list(options)
    while words:
        flag = words.pop(0)
        if flag == "--rm":
            fields["auto_remove"] = True
            continue
        if flag in ("--detach", "-d"):
            continue
        if not words:
            raise UsageError(f"docker run flag {flag} needs a value")
        value = words.pop(0)
        if flag == "--network":
            fields["network_mode"] = value
        elif flag == "--entrypoint":
            fields["entrypoint"] = [value]
        elif flag in ("-e", "--env"):
            key, _, val = value.partition("=")
            fields["env"][key] = val
        elif flag in ("-v", "--volume"):
            fields["binds"].append(value)
        elif flag in ("-u", "--user"):
            fields["user"] = value
        elif flag in ("-l", "--label"):
            key, _, val = value.partition("=")
            fields["labels"][key] = val
        else:
            raise UsageError(f"docker run flag {flag} is not supported here")
    return ContainerSpec(**fields)


def _lines(stream: Any) -> Generator[str, None, None]:
    pending = b""
    try:
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield decode(line).rstrip("\r")
        if pending:
            yield decode(pending).rstrip("\r")
    finally:
        _close_stream(stream)


def _close_stream(stream: Any) -> None:
    """End a streaming answer by closing its connection: over SSH its channel (docker-py cannot)."""
    response = stream._response
    channel = getattr(response.raw._fp.fp, "channel", None) if response.raw._fp is not None else None
    if channel is not None:
        channel.close()
    else:
        stream.close()
    response.close()


def _port_proto(port: str) -> tuple[int, str]:
    number, _, proto = port.partition("/")
    return int(number), proto or "tcp"


def _all_gpus() -> list[Any]:
    from docker.types import DeviceRequest

    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


def _conflict(exc: BaseException) -> bool:
    import docker

    return isinstance(exc, docker.errors.APIError) and exc.status_code == 409


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
