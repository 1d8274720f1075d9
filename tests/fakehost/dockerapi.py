"""An in-process stand-in for the docker Engine API: the endpoints gpuctl calls, served over socket pairs.

``ScriptedShell(...).with_docker(FakeDockerApi())`` makes the shell's ``dial`` reach it, as a host's
``docker system dial-stdio`` reaches dockerd. Unit tests use it where a real dockerd cannot easily show
a case (an OOM-killed or crash-looping engine, a dial that fails); the integration tests use the fake
GPU hosts' real dockerd.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

API_VERSION = "1.41"


@dataclass
class FakeContainer:
    id: str
    name: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    status: str = "created"
    exit_code: int = 0
    oom_killed: bool = False
    restart_count: int = 0
    logs: list[tuple[int, bytes]] = field(default_factory=list)
    stdin: bytes = b""
    stdin_closed: bool = False
    files: dict[str, bytes] = field(default_factory=dict)

    def inspect(self) -> dict[str, Any]:
        running = self.status in ("running", "restarting")
        entry = self.config.get("Entrypoint") or []
        cmd = [*entry, *(self.config.get("Cmd") or [])]
        bindings = self.host_config.get("PortBindings") or {}
        return {
            "Id": self.id, "Name": f"/{self.name}", "Path": cmd[0] if cmd else "", "Args": cmd[1:],
            "RestartCount": self.restart_count, "Config": {**self.config, "Labels": self.config.get("Labels") or {}},
            "HostConfig": self.host_config,
            "State": {"Status": self.status, "Running": running, "ExitCode": self.exit_code, "Error": "",
                      "OOMKilled": self.oom_killed, "StartedAt": "2026-01-01T00:00:00Z",
                      "FinishedAt": "0001-01-01T00:00:00Z"},
            "NetworkSettings": {"Ports": bindings if running else {}},
        }


class FakeDockerApi:
    """The daemon's state (images, containers) and every request it got."""

    def __init__(self, *, server_version: str = "27.3.1", runtimes: tuple[str, ...] = ("runc",),
                 failure: str | None = None) -> None:
        self.info = {"ServerVersion": server_version, "Runtimes": {name: {} for name in runtimes},
                     "DefaultRuntime": "runc"}
        self.images: dict[str, dict[str, Any]] = {}
        self.pull_events: dict[str, list[dict[str, Any]]] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        #: what the dial command says when it fails (the daemon is then never reached)
        self.failure = failure
        #: called with a container when it starts (tests set its state, logs, exit code)
        self.on_start: Any = None
        #: keep an attach open after its stdin ended, until the container stops (what dockerd does with a
        #: StdinOnce container when the start overtook the attach)
        self.hold_attach = False
        self.lock = threading.Lock()

    def add_image(self, name: str, *, entrypoint: list[str] | None = None, cmd: list[str] | None = None) -> None:
        self.images[name] = {"Id": "sha256:" + uuid.uuid4().hex, "Config": {"Entrypoint": entrypoint, "Cmd": cmd}}

    def container(self, ref: str) -> FakeContainer | None:
        for c in self.containers.values():
            if ref in (c.name, c.id) or (len(ref) >= 6 and c.id.startswith(ref)):
                return c
        return None

    def dialer(self) -> FakeDialer:
        return FakeDialer(self)


class FakeDialer:
    """Each ``open`` is one connection to the fake daemon (or a command that failed at once)."""

    ssh_channels = False

    def __init__(self, api: FakeDockerApi) -> None:
        self.api = api
        self.opened = 0

    def open(self, timeout: float | None) -> socket.socket:
        ours, theirs = socket.socketpair()
        ours.settimeout(timeout)
        self.opened += 1
        if self.api.failure is not None:
            theirs.close()
        else:
            threading.Thread(target=_serve, args=(theirs, self.api), daemon=True).start()
        return ours

    def failure(self) -> str | None:
        return self.api.failure

    def close(self) -> None:
        pass


def _serve(sock: socket.socket, api: FakeDockerApi) -> None:
    try:
        _Handler(sock, ("fake", 0), api)  # type: ignore[arg-type]  # the daemon's state stands in for a server
    except OSError:
        pass
    finally:
        sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # -- plumbing --------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        api: FakeDockerApi = self.server
        url = urlparse(self.path)
        path = re.sub(r"^/v[0-9.]+", "", unquote(url.path))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with api.lock:
            api.requests.append((method, path, body))
        for pattern, handler in _ROUTES:
            match = re.fullmatch(pattern, f"{method} {path}")
            if match:
                handler(self, api, query, body, *match.groups())
                return
        self._json(404, {"message": f"page not found: {method} {path}"})

    def _json(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _missing(self, ref: str) -> None:
        self._json(404, {"message": f"No such container: {ref}"})


def _version(h: _Handler, api: FakeDockerApi, q: dict, body: bytes) -> None:
    h._json(200, {"ApiVersion": API_VERSION, "Version": api.info["ServerVersion"], "MinAPIVersion": "1.12"})


def _info(h: _Handler, api: FakeDockerApi, q: dict, body: bytes) -> None:
    h._json(200, api.info)


def _image(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, name: str) -> None:
    if name in api.images:
        h._json(200, api.images[name])
    else:
        h._json(404, {"message": f"No such image: {name}"})


def _pull(h: _Handler, api: FakeDockerApi, q: dict, body: bytes) -> None:
    name = f"{q['fromImage']}:{q.get('tag') or 'latest'}"
    events = api.pull_events.get(name, [{"status": f"Status: Downloaded newer image for {name}"}])
    if not any("error" in e for e in events):
        api.images.setdefault(name, {"Id": "sha256:" + uuid.uuid4().hex, "Config": {"Entrypoint": None, "Cmd": None}})
    h.send_response(200)  # a stream, as dockerd sends it: one chunk per progress message
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for event in events:
        data = json.dumps(event).encode() + b"\r\n"
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.write(b"0\r\n\r\n")


def _create(h: _Handler, api: FakeDockerApi, q: dict, body: bytes) -> None:
    config = json.loads(body)
    name = q.get("name") or uuid.uuid4().hex[:12]
    if api.container(name) is not None:
        h._json(409, {"message": f'Conflict. The container name "/{name}" is already in use'})
        return
    if config["Image"] not in api.images:
        h._json(404, {"message": f"No such image: {config['Image']}"})
        return
    host_config = config.pop("HostConfig", None) or {}
    container = FakeContainer(id=uuid.uuid4().hex + uuid.uuid4().hex, name=name, config=config,
                              host_config=host_config)
    api.containers[container.id] = container
    h._json(201, {"Id": container.id, "Warnings": []})


def _archive(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                container.files["/" + member.name] = extracted.read()
    h._empty(200)


def _attach(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    h.send_response(101, "UPGRADED")
    h.send_header("Content-Type", "application/vnd.docker.raw-stream")
    h.send_header("Connection", "Upgrade")
    h.send_header("Upgrade", "tcp")
    h.end_headers()
    h.wfile.flush()
    container.stdin = h.rfile.read()  # until the client closes its end
    container.stdin_closed = True
    while api.hold_attach and container.status == "running" and container.id in api.containers:
        time.sleep(0.05)
    h.close_connection = True


def _start(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    container.status = "running"
    if api.on_start is not None:
        api.on_start(container)
    h._empty(204)


def _inspect(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    h._json(200, container.inspect())


def _list(h: _Handler, api: FakeDockerApi, q: dict, body: bytes) -> None:
    wanted = json.loads(q.get("filters", "{}")).get("label", [])
    rows = []
    for c in api.containers.values():
        labels = c.config.get("Labels") or {}
        if all(labels.get(k) == v for k, _, v in (w.partition("=") for w in wanted)):
            rows.append({"Id": c.id, "Names": [f"/{c.name}"], "State": c.status, "Labels": labels})
    h._json(200, rows)


def _stop(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    was = container.status
    container.status = "exited"
    h._empty(204 if was == "running" else 304)


def _delete(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    del api.containers[container.id]
    h._empty(204)


def _wait(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    h._json(200, {"StatusCode": container.exit_code, "Error": None})


def _top(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    if container.status != "running":
        h._json(409, {"message": f"Container {ref} is not running"})
        return
    # the entry command runs until its stdin was read; then the command it execs
    config = container.config
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    shown = command[4:] if container.stdin_closed and command[3:4] == ["gpuctl-entry"] else command
    h._json(200, {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                  "Processes": [["root", "4242", "4200", "0", "00:00", "?", "00:00:00", " ".join(shown)]]})


def _logs(h: _Handler, api: FakeDockerApi, q: dict, body: bytes, ref: str) -> None:
    container = api.container(ref)
    if container is None:
        return h._missing(ref)
    frames = container.logs
    tail = q.get("tail", "all")
    if tail != "all":
        frames = frames[len(frames) - int(tail):] if int(tail) else []
    data = b"".join(struct.pack(">BxxxL", stream, len(chunk)) + chunk for stream, chunk in frames)
    h._raw(200, data, "application/vnd.docker.multiplexed-stream")


_ROUTES: list[tuple[str, Callable[..., None]]] = [
    (r"GET /version", _version), (r"GET /info", _info), (r"GET /images/(.+)/json", _image),
    (r"POST /images/create", _pull), (r"POST /containers/create", _create),
    (r"PUT /containers/([^/]+)/archive", _archive), (r"POST /containers/([^/]+)/attach", _attach),
    (r"POST /containers/([^/]+)/start", _start), (r"GET /containers/([^/]+)/json", _inspect),
    (r"GET /containers/json", _list), (r"POST /containers/([^/]+)/stop", _stop),
    (r"DELETE /containers/([^/]+)", _delete), (r"POST /containers/([^/]+)/wait", _wait),
    (r"GET /containers/([^/]+)/logs", _logs), (r"GET /containers/([^/]+)/top", _top),
]
