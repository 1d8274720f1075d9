"""``vllm-router`` in front of a service's replicas: start it, add and remove workers, read its view, stop it.

gpuctl never routes a request itself: the router (a Rust binary from the vLLM project, PyPI package
``vllm-router``) does. What gpuctl relies on, measured against vllm-router 0.1.17:

* the router passes each request's ``Authorization`` header on to the worker it picks; its own
  ``--api-key`` is what it sends on its own calls to the workers. Every replica of a service serves
  with the service's one API key, so that key is both what clients send and what guards each replica;
* ``/add_worker``, ``/remove_worker`` and ``/workers`` take no key at all, so the router listens on
  its machine's loopback only (reached through an SSH tunnel when it runs elsewhere);
* adding a worker that is not up blocks for the router's startup timeout (600 s by default), so a
  replica is added only after gpuctl's own health check passed, and the timeout is kept short.

The router runs as a process of its own, started by :mod:`gpuctl.deploy.router_launcher` with its
settings (the key among them) on stdin: this machine's Python (``--router local``), or the Python of
the ``vllm-router`` found on the router's machine over SSH (``--router host`` / ``--router HOST``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from gpuctl.errors import GpuctlError, HealthCheckError, ProviderError, TimeoutError_, UsageError
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment, RouterRecord

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext

PACKAGE = "vllm-router"
#: the router's own default: requests that share a prefix go to the replica that has it cached
DEFAULT_POLICY = "cache_aware"
POLICIES = ("cache_aware", "round_robin", "power_of_two", "random", "consistent_hash")
#: how often the router checks its workers' /health (its default, 60 s, notices a dead replica in minutes)
HEALTH_CHECK_INTERVAL_S = 10
#: how long an /add_worker may wait for the worker: gpuctl adds only healthy replicas, so this is a safety net
WORKER_STARTUP_TIMEOUT_S = 60
START_TIMEOUT_S = 30.0
ROUTERS_DIR = "routers"
_LAUNCHER = Path(__file__).with_name("router_launcher.py")


class RouterWorker(BaseModel):
    """One replica as the router sees it."""

    url: str
    healthy: bool
    load: int = 0


def settings(*, port: int, policy: str, api_key: str, workers: Sequence[str] = (),
             metrics_port: int | None = None, ttl_seconds: int | None = None) -> dict[str, Any]:
    """The ``RouterArgs`` fields gpuctl sets (the launcher reads them as JSON on stdin).

    The router always serves Prometheus metrics (on 29000 unless told otherwise, so two routers on one
    machine collide): each gets the port after its own unless ``metrics_port`` says otherwise.
    """
    return {"worker_urls": list(workers), "host": "127.0.0.1", "port": port, "policy": policy, "api_key": api_key,
            "prometheus_host": "127.0.0.1", "prometheus_port": metrics_port or port + 1,
            "health_check_interval_secs": HEALTH_CHECK_INTERVAL_S,
            "worker_startup_timeout_secs": WORKER_STARTUP_TIMEOUT_S, "worker_startup_check_interval": 2,
            "log_level": "warning", "stop_after_seconds": ttl_seconds}


def free_port() -> int:
    """A TCP port on this machine's loopback nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_pair() -> tuple[int, int]:
    """Two free loopback ports: the router's and its metrics'."""
    while True:
        port, metrics = free_port(), free_port()
        if port != metrics:
            return port, metrics


# -- this machine -------------------------------------------------------------------------------------------

def start_local(state_dir: Path, name: str, *, policy: str, api_key: str, workers: Sequence[str] = (),
                ttl_seconds: int | None = None) -> RouterRecord:
    """The router of service ``name`` on this machine's loopback, in a session of its own (it outlives gpuctl)."""
    from importlib.util import find_spec

    if find_spec("vllm_router") is None:
        raise UsageError(f"--router local needs the {PACKAGE} package in gpuctl's Python ({sys.executable})",
                         f"pip install 'gpuctl[router]' (or pip install {PACKAGE})")
    port, metrics = _free_pair()
    log = state_dir / ROUTERS_DIR / f"{name}.log"
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log, "ab") as output:
        # run as -c from the router's own directory: a script's folder (gpuctl/deploy, which has a secrets.py)
        # would shadow the standard library on sys.path
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER.read_text()], stdin=subprocess.PIPE,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent)
    assert process.stdin is not None
    line = json.dumps(settings(port=port, policy=policy, api_key=api_key, workers=workers, metrics_port=metrics,
                               ttl_seconds=ttl_seconds))
    process.stdin.write((line + "\n").encode())
    process.stdin.close()
    record = RouterRecord(placement="local", port=port, pid=process.pid, pid_start=process_start(process.pid),
                          url=f"http://127.0.0.1:{port}", policy=policy, log=str(log),
                          started_at=datetime.now(timezone.utc))
    try:
        wait_ready(record.url, exited=lambda: process.poll() is not None, log_tail=lambda: _tail(log))
    except BaseException:
        stop_local(record)
        raise
    return record


def stop_local(record: RouterRecord) -> None:
    """Stop the router process of ``record`` if it still runs (and is still the process gpuctl started)."""
    pid = record.pid
    if pid is None or not is_ours(pid, record.pid_start):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while is_ours(pid, record.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_ours(pid, record.pid_start):
        os.killpg(pid, signal.SIGKILL)


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def is_ours(pid: int, start: str | None) -> bool:
    """Whether ``pid`` runs and is the process that started at ``start`` (pids are reused)."""
    current = process_start(pid)
    return current is not None and (start is None or current == start)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


# -- another machine, over SSH ------------------------------------------------------------------------------

#: reads the settings line, then starts the launcher in the background with it on stdin; prints the pid
_REMOTE_START = 'cd /tmp && read -r line; printf "%s\\n" "$line" | setsid {python} -c "$1" > "$2" 2>&1 & echo $!'
#: the interpreter line of the vllm-router on the machine (its console script's Python)
_REMOTE_PYTHON = 'r=$(command -v vllm-router || ls "$HOME/.local/bin/vllm-router") 2>/dev/null && head -n1 "$r"'
#: what gpuctl installs on a router machine that has none (it needs Python 3.8+ and pip; a rented VM has both)
_REMOTE_INSTALL = ["python3", "-m", "pip", "install", "--quiet", "--user", f"{PACKAGE}>=0.1.17"]
INSTALL_TIMEOUT_S = 600.0


def start_remote(shell: Shell, name: str, *, policy: str, api_key: str, workers: Sequence[str] = (),
                 port: int = 30000, ttl_seconds: int | None = None) -> RouterRecord:
    """The router of service ``name`` on the loopback of ``shell``'s machine, which must have ``vllm-router``."""
    import shlex

    found = shell.run(["sh", "-c", _REMOTE_PYTHON], timeout=30)
    if not found.ok:  # none there: install it for the login user (no root needed)
        installed = shell.run(_REMOTE_INSTALL, timeout=INSTALL_TIMEOUT_S)
        if not installed.ok:
            raise UsageError(f"{shell.where} has no {PACKAGE}, and 'pip install --user {PACKAGE}' failed there: "
                             f"{installed.last_error_line()}", f"install it there yourself: pip install {PACKAGE}")
        found = shell.run(["sh", "-c", _REMOTE_PYTHON], timeout=30)
    interpreter = found.stdout.strip()
    if not found.ok or not interpreter.startswith("#!"):
        raise UsageError(f"{shell.where} has no usable {PACKAGE}", f"install it there: pip install {PACKAGE}")
    # the console script's own interpreter line (an 'env VAR=... python' one included) runs the launcher
    python = shlex.join(shlex.split(interpreter[2:]))
    log = f"/tmp/gpuctl-router-{name}.log"
    line = json.dumps(settings(port=port, policy=policy, api_key=api_key, workers=workers,
                               ttl_seconds=ttl_seconds)) + "\n"
    started = shell.run(["sh", "-c", _REMOTE_START.format(python=python), "sh", _LAUNCHER.read_text(), log],
                        input=line.encode(), timeout=30).check("starting vllm-router", shell.where)
    pid = int(started.stdout.strip().splitlines()[-1])
    pid_start = shell.run(["sh", "-c", f"cut -d' ' -f22 /proc/{pid}/stat"], timeout=30).stdout.strip() or None
    record = RouterRecord(placement="remote", host=shell.where, port=port, pid=pid, pid_start=pid_start,
                          url=f"http://127.0.0.1:{port}", policy=policy, log=log,
                          started_at=datetime.now(timezone.utc))

    def exited() -> bool:
        return not shell.run(["sh", "-c", f"kill -0 {pid}"], timeout=30).ok

    def log_tail() -> str:
        return shell.run(["tail", "-n", "20", log], timeout=30).stdout

    forward = getattr(shell, "forward", None)
    try:
        if forward is None:  # this machine (a local shell): the loopback is ours
            wait_ready(record.url, exited=exited, log_tail=log_tail)
        else:
            with forward(port) as local_port:
                wait_ready(f"http://127.0.0.1:{local_port}", exited=exited, log_tail=log_tail)
    except BaseException:
        stop_remote(shell, record)
        raise
    return record


def stop_remote(shell: Shell, record: RouterRecord) -> None:
    """Stop the router of ``record`` on ``shell``'s machine when it is still the process gpuctl started."""
    if record.pid is None:
        return
    check = f'[ "$(cut -d" " -f22 /proc/{record.pid}/stat 2>/dev/null)" = "{record.pid_start}" ]'
    shell.run(["sh", "-c", f"{check} && kill -TERM -{record.pid} 2>/dev/null; {check} && sleep 2 && "
                           f"kill -KILL -{record.pid} 2>/dev/null; true"], timeout=30)


# -- talking to a running router ----------------------------------------------------------------------------

def wait_ready(url: str, *, exited: Any = None, log_tail: Any = None, timeout: float = START_TIMEOUT_S) -> None:
    """Until the router at ``url`` answers ``/health``; its log tail in the error when it ended or never did."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if exited is not None and exited():
            raise ProviderError(f"vllm-router exited while starting: {(log_tail() if log_tail else '').strip()[-400:]}",
                                "its log is under .gpuctl/routers/")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError_(f"vllm-router at {url} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def workers(url: str) -> list[RouterWorker]:
    """The router's workers and whether it finds them healthy."""
    data = _call("GET", url, "/workers").json()
    return [RouterWorker(url=w["url"], healthy=bool(w.get("is_healthy")), load=int(w.get("load") or 0))
            for w in data.get("workers", [])]


def add_worker(url: str, worker: str) -> None:
    """Put ``worker`` (a replica's base URL, healthy already) behind the router."""
    _call("POST", url, "/add_worker", params={"url": worker}, timeout=WORKER_STARTUP_TIMEOUT_S + 10)


def remove_worker(url: str, worker: str) -> None:
    """Take ``worker`` out of the router (done before the replica is torn down); absent is fine."""
    try:
        _call("POST", url, "/remove_worker", params={"url": worker})
    except RouterCallError as exc:
        if exc.status not in (400, 404):
            raise


class RouterCallError(HealthCheckError):
    """The router did not answer, or refused; ``status`` is its HTTP status when it answered."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


def _call(method: str, url: str, path: str, *, params: dict[str, str] | None = None,
          timeout: float = 10.0) -> Any:
    import httpx

    try:
        response = httpx.request(method, f"{url}{path}", params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RouterCallError(f"vllm-router at {url} did not answer {path}: {exc}",
                              "'gpuctl status NAME' shows whether it runs") from exc
    if response.status_code >= 400:
        raise RouterCallError(f"vllm-router at {url} refused {path} (HTTP {response.status_code}: "
                              f"{response.text.strip()[:200]})", status=response.status_code)
    return response


# -- where a service's replicas meet its router -------------------------------------------------------------

def worker_url(deployment: Deployment, router: RouterRecord) -> str:
    """How the router reaches a replica: its public endpoint (its loopback when they share a machine)."""
    if deployment.endpoint is None:
        raise UsageError(f"replica {deployment.name} has no endpoint")
    endpoint = deployment.endpoint.rstrip("/").removesuffix("/v1")
    if router.host is not None and deployment.host == router.host and deployment.host_port:
        return f"http://127.0.0.1:{deployment.host_port}"
    return endpoint


@contextmanager
def reach(ctx: DeployContext, router: RouterRecord) -> Iterator[str]:
    """The router's URL from here: directly when it runs here, else an SSH tunnel to its machine's loopback."""
    if router.host is None:
        yield router.url
        return
    from gpuctl.deploy.hosts import connect, opened
    from gpuctl.host.target import parse_target

    identity = Path(router.identity) if router.identity else None
    with opened(connect(parse_target(router.host), ctx.state_dir, identity=identity,
                        accept_host_key=False)) as session:
        forward = getattr(session, "forward", None)
        if forward is None:  # 'local' names this machine: its loopback is ours
            yield router.url
            return
        with forward(router.port) as local_port:
            yield f"http://127.0.0.1:{local_port}"


def detach(ctx: DeployContext, deployment: Deployment) -> None:
    """Take a replica out of its service's router before it is torn down (``down``, ``scale``, ``gc``, a failed
    ``up``). Best effort: a router that is gone routes nothing, and the replica goes regardless (also when
    the state file cannot be read: the teardown never depends on it)."""
    try:
        service = ctx.store.read().services.get(deployment.service or "")
        if service is None or service.router is None or service.router.stopped_at or not deployment.endpoint:
            return
        with reach(ctx, service.router) as url:
            remove_worker(url, worker_url(deployment, service.router))
    except GpuctlError as exc:
        ctx.reporter.warn(f"could not take {deployment.name} out of the router of {deployment.service} "
                          f"({exc.one_line()}); removing it anyway")
