"""The watchdog script itself (templates/watchdog.sh), run here with bash: TTL, budget and idle limits.

The engine is the fake engine (engine_shim + mock_openai) on loopback, with its Prometheus /metrics; docker is
a stand-in that records what it was asked; the shutdown command writes a file.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.metrics.engines import activity_names
from gpuctl.templating import IdleWatch, watchdog_script
from tests.fakehost.local_engine import LocalEngine, free_port
from tests.fakehost.shells import wait_until


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    """The fake engine serving vLLM-shaped /metrics on a free loopback port."""
    with LocalEngine("serve", "m") as local:
        yield local


class Run:
    """The rendered watchdog running under bash, with a recording docker first on PATH."""

    def __init__(self, tmp: Path, **options: object) -> None:
        self.tmp = tmp
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "docker").write_text(f'#!/bin/sh\necho "$*" >> {tmp / "docker.calls"}\n')
        (bin_dir / "docker").chmod(0o755)
        self.down = tmp / "shut-down"
        script = watchdog_script(container="c0ffee", deadline_file=str(tmp / "deadline"), interval_s=1,
                                 shutdown_command=f"touch {self.down}", **options)  # type: ignore[arg-type]
        (tmp / "watchdog.sh").write_text(script)
        self.log = tmp / "watchdog.log"
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(["bash", str(tmp / "watchdog.sh")], stdout=log, stderr=subprocess.STDOUT,
                                            env=env)

    def ended(self, timeout: float) -> bool:
        return wait_until(lambda: self.process.poll() is not None, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    @property
    def text(self) -> str:
        return self.log.read_text()

    @property
    def docker_calls(self) -> list[str]:
        calls = self.tmp / "docker.calls"
        return calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture
def run(tmp_path: Path) -> Iterator[type[Run]]:
    started: list[Run] = []

    def start(**options: object) -> Run:
        started.append(Run(tmp_path, **options))
        return started[-1]

    yield start  # type: ignore[misc]
    for one in started:
        one.stop()


def test_the_budget_ends_it(run: type[Run]) -> None:
    dog = run(deadline=0, budget_deadline=int(time.time()) + 1)
    assert dog.ended(timeout=20), dog.text
    assert "budget spent" in dog.text and "stopping c0ffee" in dog.text
    assert dog.docker_calls == ["stop --time 30 c0ffee"] and dog.down.exists()


def test_the_ttl_file_moves_the_deadline(run: type[Run], tmp_path: Path) -> None:
    (tmp_path / "deadline").write_text(f"{int(time.time()) + 3600}\n")
    dog = run(deadline=int(time.time()) + 1)
    time.sleep(3)
    assert dog.process.poll() is None, dog.text
    (tmp_path / "deadline").write_text(f"{int(time.time())}\n")
    assert dog.ended(timeout=20), dog.text
    assert "deadline" in dog.text and "passed" in dog.text


def test_idle_waits_for_quiet_and_requests_keep_it_alive(run: type[Run], engine: LocalEngine,
                                                         tmp_path: Path) -> None:
    port = engine.port
    busy, requests = activity_names("vllm")
    activity = tmp_path / "activity"
    dog = run(deadline=0, idle=IdleWatch(seconds=5, port=port, busy_metrics=tuple(busy),
                                         request_metrics=tuple(requests), activity_file=str(activity)))
    assert wait_until(activity.exists, timeout=20), dog.text
    # a request every second for 7 s (longer than the limit): the counter moves, so it stays up
    for _ in range(7):
        engine.complete()
        time.sleep(1)
        assert dog.process.poll() is None, dog.text
    quiet_from = time.time()
    assert dog.ended(timeout=30), dog.text
    assert time.time() - quiet_from >= 3, "ended before the idle limit"
    assert "idle for" in dog.text and dog.down.exists()
    assert int(activity.read_text()) >= int(quiet_from) - 2


def test_idle_never_starts_while_metrics_are_unreadable(run: type[Run]) -> None:
    dog = run(deadline=0, idle=IdleWatch(seconds=1, port=free_port(), busy_metrics=("vllm:num_requests_running",),
                                         request_metrics=("vllm:request_success_total",)))
    time.sleep(4)
    assert dog.process.poll() is None, dog.text
    assert dog.text.count("engine metrics not readable") == 1
