"""Faults of a container-provider deployment (RunPod, through its stand-in): each ends with no pod left.

The pods serve a mock engine (or a closed port), so no GPU host is needed: interrupts while the
create is in flight, ``down`` racing ``up``, a project directory that turns read-only or full, an
engine that dies once its pod runs, and status polls that answer late or garbled.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.fakehost.cloud import wait_until
from tests.integration.fault_kit import (
    RUNPOD_UP,
    RunPodWorld,
    StateDir,
    finish,
    gpuctl_proc,
    record,
    wait_for_event,
)
from tests.standins.server import Fault

pytestmark = pytest.mark.integration

#: how long the stand-in holds a create before placing the pod: the window an interrupt lands in
CREATE_DELAY_S = 2.0


def slow_create(world: RunPodWorld) -> None:
    world.api.faults.next(Fault.delay(CREATE_DELAY_S, path="/v2/pods", method="POST"))


def wait_for_create(world: RunPodWorld) -> None:
    wait_until(lambda: bool(world.creates()), "the create to be sent", timeout=60)


def created_at_provider(world: RunPodWorld) -> None:
    """The create completes at the provider whatever happened to the caller meanwhile."""
    wait_until(lambda: len(world.api.state.created) == 1, "the delayed create to be placed", timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_the_create_waits_for_it_and_removes_the_pod(
        gpuctl, runpod_world: RunPodWorld, isolated: Path, signum: signal.Signals) -> None:
    slow_create(runpod_world)
    up = gpuctl_proc(*RUNPOD_UP, "--name", "inflight")
    wait_for_create(runpod_world)
    up.send_signal(signum)
    code, _, stderr = finish(up)
    assert code == 130, stderr
    created_at_provider(runpod_world)
    assert runpod_world.pods() == [], "the pod the create made was terminated"
    assert record(isolated, "inflight")["status"] == "terminated"
    down = gpuctl("down", "inflight")
    assert down.exit_code == 0 and runpod_world.pods() == []


def test_down_all_during_the_create_stops_the_launch_and_leaves_no_pod(gpuctl, runpod_world: RunPodWorld,
                                                                      isolated: Path) -> None:
    slow_create(runpod_world)
    up = gpuctl_proc(*RUNPOD_UP, "--name", "raced")
    wait_for_create(runpod_world)
    down = gpuctl("down", "--all", "--json")
    code, stdout, stderr = finish(up)
    created_at_provider(runpod_world)
    assert "is ready" not in stdout and code == 130, stderr
    assert runpod_world.pods() == [], "nothing bills once 'down' returned"
    assert down.exit_code == 0, down.stderr
    (row,) = json.loads(down.stdout)
    assert (row["name"], row["status"]) == ("raced", "terminated")
    assert record(isolated, "raced")["status"] == "terminated"
    rows = json.loads(gpuctl("status", "--all", "--no-probe", "--json").stdout)
    assert all((r["uptime_seconds"] or 0) >= 0 for r in rows)


def test_down_waits_for_an_up_in_its_health_wait_and_nothing_bills(gpuctl, runpod_world: RunPodWorld,
                                                                  isolated: Path, monkeypatch) -> None:
    runpod_world.deaf(monkeypatch)
    up = gpuctl_proc(*RUNPOD_UP, "--name", "waiting", "--health-timeout", "5m")
    wait_for_event(isolated, "waiting", "engine-started", up)
    down = gpuctl("down", "waiting")
    code, stdout, stderr = finish(up)
    assert code == 130 and "is ready" not in stdout, stderr
    assert down.exit_code == 0, down.stderr
    assert runpod_world.pods() == []
    assert record(isolated, "waiting")["status"] == "terminated"


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_state_write_that_fails_after_the_create_still_removes_the_pod(
        runpod_world: RunPodWorld, state_dir: StateDir, isolated: Path, fault: str) -> None:
    slow_create(runpod_world)
    up = gpuctl_proc(*RUNPOD_UP, "--name", "nowrite")
    wait_for_create(runpod_world)
    if fault == "read-only":
        state_dir.read_only()
    else:
        state_dir.fill()
    code, _, stderr = finish(up)
    created_at_provider(runpod_world)
    assert runpod_world.pods() == [], "torn down although its record could not be written"
    assert code == 2, stderr
    cause = "Read-only file system" if fault == "read-only" else "No space left on device"
    assert str(isolated / ".gpuctl") in stderr and cause in stderr
    [pod_id] = runpod_world.api.state.terminated
    assert f"RunPod instance {pod_id}: terminated" in stderr


def test_an_engine_that_dies_once_its_pod_runs_is_noticed_in_seconds(runpod_world: RunPodWorld, isolated: Path,
                                                                     monkeypatch) -> None:
    runpod_world.deaf(monkeypatch)
    up = gpuctl_proc(*RUNPOD_UP, "--name", "dies", "--health-timeout", "10m")
    wait_for_event(isolated, "dies", "engine-started", up)
    (pod,) = runpod_world.api.state.pods.values()
    pod.log = ["INFO starting", "torch.OutOfMemoryError: CUDA out of memory"]
    pod.status = "EXITED"  # the engine process ended; RunPod shows the pod exited
    died = time.monotonic()
    code, _, stderr = finish(up)
    assert code == 8, stderr
    assert time.monotonic() - died < 20, "seen at the next poll, not at --health-timeout"
    assert "CUDA out of memory" in stderr
    assert runpod_world.pods() == []


def test_a_create_answered_500_is_asked_again_with_its_launch_token(gpuctl, runpod_world: RunPodWorld,
                                                                  isolated: Path) -> None:
    runpod_world.api.faults.next(Fault.error(500, path="/v2/pods", method="POST"))
    result = gpuctl(*RUNPOD_UP, "--name", "retried")
    assert result.exit_code == 0, result.stderr
    assert "answered the create with an error" in result.stderr and "asking again with the same launch token" in (
        result.stderr)
    assert len(runpod_world.creates()) == 2 and len(runpod_world.pods()) == 1
    assert gpuctl("down", "retried").exit_code == 0 and runpod_world.pods() == []


@pytest.mark.parametrize("faults", [[Fault.malformed(path="/v2/pods/")] * 2,
                                    [Fault.error(502, path="/v2/pods/")] * 4])  # 4: the client retries a 5xx 3 times
def test_a_garbled_status_answer_does_not_tear_down_a_pod_coming_up(gpuctl, runpod_world: RunPodWorld,
                                                                   isolated: Path, faults: list[Fault]) -> None:
    runpod_world.api.faults.next(*faults)  # the polls while the pod starts
    result = gpuctl(*RUNPOD_UP, "--name", "garbled")
    assert result.exit_code == 0, result.stderr
    assert "did not answer a status poll" in result.stderr
    assert record(isolated, "garbled")["status"] == "running"
    assert gpuctl("down", "garbled").exit_code == 0 and runpod_world.pods() == []
