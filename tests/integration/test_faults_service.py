"""Faults of a service (replicas behind vllm-router) on RunPod's stand-in: whatever happens to the
project directory, ``gpuctl down NAME`` leaves no pod billing and no router running."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from gpuctl.deploy.router import is_ours
from gpuctl.state import StateStore
from tests.fakehost.cloud import wait_until
from tests.integration.fault_kit import RunPodWorld, StateDir

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_spec("vllm_router") is None, reason="vllm-router is not installed (test extra)")]


def test_a_service_goes_down_although_its_record_cannot_be_written(gpuctl, runpod_world: RunPodWorld,
                                                                   state_dir: StateDir, isolated: Path) -> None:
    up = gpuctl("up", "tiny", "--provider", "runpod", "--gpu", "L40S", "--replicas", "1", "--name", "svc", "-y")
    assert up.exit_code == 0, up.stderr
    assert len(runpod_world.pods()) == 1
    router = StateStore(isolated).read().services["svc"].router
    assert router is not None and is_ours(router.pid, router.pid_start)
    state_dir.fill()  # full rather than read-only: the router's log stays open for writing there
    down = gpuctl("down", "svc")
    assert runpod_world.pods() == [], "the replica went although no record could be written"
    assert not is_ours(router.pid, router.pid_start), "and the router"
    assert down.exit_code == 2, down.stderr
    assert "No space left on device" in down.stderr


def test_a_disk_that_fills_mid_up_still_tears_down_every_replica_and_the_router(
        runpod_world: RunPodWorld, state_dir: StateDir, isolated: Path) -> None:
    from tests.integration.fault_kit import finish, gpuctl_proc, wait_for_event
    from tests.standins.server import Fault

    up = gpuctl_proc("up", "tiny", "--provider", "runpod", "--gpu", "L40S", "--replicas", "2", "--name", "svc", "-y")
    wait_for_event(isolated, "svc-1", "ready", up)
    runpod_world.api.faults.next(Fault.delay(2.0, path="/v2/pods", method="POST"))  # the window to fill the disk in
    wait_until(lambda: len(runpod_world.creates()) == 2, "the second replica's create", timeout=60)
    router = StateStore(isolated).read().services["svc"].router
    state_dir.fill()
    # the second replica's record on disk still says its create is unsettled (the write that settled it
    # failed): the service's teardown looks for its pod by tags until the create can no longer make one
    code, _, stderr = finish(up, timeout=240)
    wait_until(lambda: len(runpod_world.api.state.created) == 2, "the delayed create to be placed", timeout=30)
    assert runpod_world.pods() == [], "the first replica went too, although the service's record could not be written"
    assert router is not None and not is_ours(router.pid, router.pid_start), "and the router"
    assert code == 2 and "No space left on device" in stderr, stderr
    assert "that was cut off to show up" not in stderr, (
        "the replica's own teardown removed its pod: the service's does not wait for it again from the stale file")
