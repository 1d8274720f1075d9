"""What the fault tests share: real ``gpuctl`` processes, the state file as they leave it, a project
directory that can turn read-only or full, and a RunPod world that needs no GPU host.

* ``gpuctl_proc``: ``python -m gpuctl ...`` in the project directory, with this checkout's code; the
  providers are the real ones (pointed at the stand-ins by the fixtures' environment).
* ``StateDir``: a small tmpfs mounted on the project's ``.gpuctl`` (root only), which a test remounts
  read-only or fills up at the moment it chooses, as a user's disk would.
* ``runpod_world``: the RunPod stand-in whose pods' proxy URL is a mock OpenAI server (healthy) or a
  closed port (a deaf engine): a container-provider deployment in about a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakehost.cloud import REPO, wait_until, write_recipe
from tests.standins.mock_openai import MockProcess
from tests.standins.runpod_server import RunPodStandin

#: a port nothing listens on: an engine that never answers
DEAF = "http://127.0.0.1:9"
RUNPOD_UP = ("up", "tiny", "--provider", "runpod", "--gpu", "L40S", "-y")


def gpuctl_proc(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A real ``gpuctl`` process (real providers, see fault_runner.py) in the current directory."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "tests.integration.fault_runner", *args], env=environment,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int, str, str]:
    """Wait for ``process``; its exit code, stdout and stderr (it is killed if it outlives ``timeout``)."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, stdout, stderr


def state(project: Path) -> dict[str, Any]:
    path = project / ".gpuctl" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"deployments": {}, "history": []}


def record(project: Path, name: str) -> dict[str, Any]:
    return state(project)["deployments"].get(name) or {}


def events(project: Path, name: str) -> list[str]:
    try:
        history = state(project)["history"]
    except (ValueError, OSError):  # read while being replaced: try again later
        return []
    return [e["event"] for e in history if e["deployment"] == name]


def wait_for_event(project: Path, name: str, event: str, process: subprocess.Popen[str] | None = None,
                   timeout: float = 60.0) -> None:
    def seen() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"gpuctl ended ({process.returncode}) before '{event}': {process.stderr.read()}"
                                 if process.stderr else "gpuctl ended early")
        return event in events(project, name)

    wait_until(seen, f"event '{event}' of {name}", timeout=timeout)


@dataclass
class StateDir:
    """A tmpfs of ``size`` on ``path`` (the project's ``.gpuctl``); unmounted by the fixture."""

    path: Path

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def writable(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)

    def fill(self) -> None:
        """Use up the file system's last byte (the files already there stay as they are)."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (65536, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)


@contextmanager
def small_state_dir(project: Path) -> Iterator[StateDir]:
    """A 2 MB tmpfs on ``project/.gpuctl`` for the block (skips the test when not root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system for the project directory needs root")
    path = project / ".gpuctl"
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield StateDir(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def state_dir(isolated: Path) -> Iterator[StateDir]:
    with small_state_dir(isolated) as mounted:
        yield mounted


@dataclass
class RunPodWorld:
    api: RunPodStandin
    engine_url: str
    project: Path

    def deaf(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pods launched from now on serve an engine that never answers."""
        monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", DEAF)

    def creates(self) -> list[Any]:
        return self.api.calls("POST", "/v2/pods")

    def pods(self) -> list[str]:
        """Pods that exist (and bill) at the stand-in."""
        return sorted(self.api.state.pods)


@pytest.fixture(scope="module")
def healthy_engine() -> Iterator[MockProcess]:
    with MockProcess("--model", "meta-llama/Meta-Llama-3-8B-Instruct") as server:
        yield server


@pytest.fixture
def runpod_world(runpod_api: RunPodStandin, healthy_engine: MockProcess, isolated: Path,
                 monkeypatch: pytest.MonkeyPatch) -> RunPodWorld:
    """Pods that start at the first poll and serve the mock engine; the recipe ``tiny``."""
    runpod_api.state.boot_polls = 1
    monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", healthy_engine.url)
    write_recipe(isolated)
    return RunPodWorld(runpod_api, healthy_engine.url, isolated)
