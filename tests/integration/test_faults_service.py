"""Faults of a service (replicas behind vllm-router) on RunPod's stand-in: whatever happens to the
project directory, ``gpuctl down NAME`` leaves no pod billing and no router running."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from gpuctl.deploy.router import is_ours
from gpuctl.state import StateStore
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
