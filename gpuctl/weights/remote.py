"""Running the fetcher on a host: a throwaway container of the engine image, with the cache mounted.

Why a container: the engine image is on the host anyway (the engine needs it) and carries a
Python; the container runs as root, so the files it writes belong to the same user the engine
reads them as, whatever the login user is; and ``sudo -n docker`` hosts need no other privilege.
Nothing is written on the host for it: the fetcher's source is copied into the container before it
starts, and the HF token and the job (which may hold a mirror's signed URLs) reach it on its stdin
(see :mod:`gpuctl.host.docker`), never in a file, argv or the container's configuration. The
container is named ``gpuctl-weights-*`` and labelled role=fetcher (plus what the caller adds: the
deployment's project, name and token), so one left behind by a killed gpuctl is found by label.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from gpuctl.errors import GpuctlError, NotFoundError, ProviderError
from gpuctl.events import NullReporter, Reporter
from gpuctl.host.errors import HostError
from gpuctl.weights.fetcher import EVENT_PREFIX
from gpuctl.weights.hub import gated_error, token_error

if TYPE_CHECKING:
    from gpuctl.host.docker import DockerEngine

FETCHER_SOURCE = Path(__file__).with_name("fetcher.py")
#: the host's cache directory inside the fetcher's container (the engine's HF_HOME)
CONTAINER_CACHE = "/gpuctl-cache"
CONTAINER_SCRIPT = "/gpuctl/fetcher.py"
CONTAINER_PREFIX = "gpuctl-weights-"
TOKEN_ENV = "HF_TOKEN"
_EXIT_WAIT_S = 10.0
RESUME_HINT = "run the command again: what arrived is kept and the download resumes"
#: a container's exit code when a signal ended it (128 + the signal)
_KILLED_BY = {137: "killed", 143: "terminated"}
Event = dict[str, Any]


@dataclass
class FetcherRun:
    """How one fetcher run ended: its exit code, its events, and the last lines that were not events."""

    exit_code: int
    events: list[Event] = field(default_factory=list)
    other_output: list[str] = field(default_factory=list)

    def last(self, kind: str) -> Event | None:
        return next((e for e in reversed(self.events) if e.get("e") == kind), None)

    def all(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("e") == kind]

    def failure(self) -> str:
        """The fetcher's own error message, else the tail of its output."""
        error = self.last("error")
        if error is not None:
            return str(error.get("message"))
        tail = " | ".join(self.other_output[-3:])
        return f"exit {self.exit_code}" + (f": {tail}" if tail else "")


def run_fetcher(
    docker: DockerEngine,
    command: str,
    *,
    image: str,
    cache_dir: str,
    job: dict[str, Any] | None = None,
    repo: str | None = None,
    token: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    reporter: Reporter | None = None,
    labels: Mapping[str, str] | None = None,
) -> FetcherRun:
    """Run ``fetcher.py COMMAND`` on the host of ``docker`` and wait for it; events go to ``on_event`` as they come.

    ``labels`` are added to the container's (the deployment it works for). The container is removed
    however this ends (an interrupt stops the download; what arrived stays as a partial file that
    the next run resumes).
    """
    from gpuctl.host.docker import ContainerSpec
    from gpuctl.host.labels import host_labels

    name = CONTAINER_PREFIX + uuid4().hex[:8]
    args = [CONTAINER_SCRIPT, command, "--cache", CONTAINER_CACHE]
    if job is not None:
        args += ["--job", "/dev/stdin"]
    if repo is not None:
        args += ["--repo", repo]
    spec = ContainerSpec(
        image=image, entrypoint=["python3"], command=["-u", *args], env={"PYTHONDONTWRITEBYTECODE": "1"},
        binds=[f"{cache_dir}:{CONTAINER_CACHE}"], network_mode="host",
        labels={**host_labels("fetcher"), **(labels or {})}, files={CONTAINER_SCRIPT: FETCHER_SOURCE.read_bytes()},
    )
    try:
        docker.start(spec, name=name, secrets={TOKEN_ENV: token} if token else None,
                     stdin=json.dumps(job).encode() if job is not None else None, reporter=reporter or NullReporter())
        run = FetcherRun(exit_code=-1)
        other: deque[str] = deque(maxlen=20)
        for line in docker.follow_logs(name, tail=None):
            event = parse_event(line)
            if event is None:
                if line.strip():
                    other.append(line.strip())
                continue
            run.events.append(event)
            if on_event is not None:
                on_event(event)
        run.other_output = list(other)
        run.exit_code = _exit_code(docker, name)
        return run
    finally:
        docker.remove(name, stop_timeout=2)


def fetcher_error(run: FetcherRun, repo: str, where: str, *, token_given: bool) -> GpuctlError:
    """The gpuctl error for a failed run: a rejected token or gated 6, missing 3, a bad download 4, disk or lock 4."""
    error = run.last("error") or {}
    kind, message = error.get("kind"), run.failure()
    if kind == "token":
        return token_error()
    if kind in ("gated", "auth"):
        return gated_error(repo, token_given=token_given)
    if kind == "not_found":
        return NotFoundError(message, "check the repo id and revision")
    if kind == "disk":
        return HostError(f"not enough disk for {repo} on {where}: {message}",
                         "free space there ('gpuctl weights ls' and 'gpuctl weights rm'), or use a bigger disk")
    if kind == "busy":
        return HostError(f"{repo} is in use on {where}: {message}", "wait for the other gpuctl command to finish")
    if kind in ("mismatch", "http"):
        return ProviderError(f"downloading {repo} to {where} failed: {message}", RESUME_HINT)
    if kind is None and run.exit_code in _KILLED_BY:
        return stopped_early(where, f"{_KILLED_BY[run.exit_code]} (exit {run.exit_code})")
    return HostError(f"the weights fetcher failed on {where}: {message}")


def stopped_early(where: str, how: str) -> HostError:
    """A fetcher killed halfway (a kill -9, the OOM killer, its container removed): one message however docker
    reports it, since whether the container is seen exiting or already gone is a race."""
    return HostError(f"the weights fetcher was stopped on {where} before it finished: {how}", RESUME_HINT)


def parse_event(line: str) -> Event | None:
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _exit_code(docker: DockerEngine, name: str) -> int:
    """The container's exit code; the log stream ends when it stops, but give docker a moment to say so."""
    deadline = time.monotonic() + _EXIT_WAIT_S
    while True:
        state = docker.inspect(name)
        if state is None or state.status == "removing":
            raise stopped_early(docker.shell.where, "its container was removed")
        if not state.running and state.exit_code is not None:
            return state.exit_code
        if time.monotonic() > deadline:
            raise HostError(f"lost the output of the weights fetcher {name} on {docker.shell.where}")
        time.sleep(0.2)
