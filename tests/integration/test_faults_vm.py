"""Faults of a rented-machine deployment (Lambda, through its stand-in; the machine is a fake GPU host):
kill -9 at each step, an interrupt while the create is in flight; ``down`` (and ``gc``) then leave no
instance billing.

One H100 fake host plays every instance of the module; since a terminated instance would take its
disk with it, the test clears the host after each trial.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.providers.lambda_cloud import mapping as lambda_mapping
from gpuctl.providers.lambda_cloud import provider as lambda_provider
from tests.fakehost.cloud import wait_until, write_recipe
from tests.fakehost.host import FakeGpu, FakeGpuHost, FakeHostEnv
from tests.integration.fault_kit import finish, gpuctl_proc, record, wait_for_event
from tests.standins.lambda_server import LambdaStandin
from tests.standins.server import Fault

pytestmark = pytest.mark.integration

H100 = [FakeGpu(name="NVIDIA H100 80GB HBM3", memory_total_mib=81559)]
UP = ("up", "tiny", "--provider", "lambda", "--gpu", "H100-80GB", "-y", "--ttl", "1h")
LAUNCH = "/api/v1/instance-operations/launch"


@pytest.fixture(scope="module")
def machine(fakehost_env: FakeHostEnv) -> Iterator[FakeGpuHost]:
    host = fakehost_env.new_host(H100).start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def lambda_world(lambda_api: LambdaStandin, machine: FakeGpuHost, isolated: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStandin]:
    for module in (lambda_mapping, lambda_provider):  # Lambda logs in as ubuntu; the fake host has root
        monkeypatch.setattr(module, "SSH_USER", "root")
    assert machine.hub is not None
    monkeypatch.setenv("HF_ENDPOINT", machine.hub.url)
    state = lambda_api.state
    state.address, state.boot_polls, state.ip_polls = machine.address, 1, 1
    state.authorized_keys = str(machine.home / ".ssh" / "authorized_keys")
    state.machine, state.filesystem_dir = machine, tmp_path / "filesystems"
    write_recipe(isolated)
    yield lambda_api
    # a terminated instance takes its disk along: the fake host forgets this trial's containers and watchdogs
    ids = machine.docker("ps", "-aq").stdout.split()
    if ids:
        machine.docker("rm", "--force", *ids, check=False)
    for pid, cmd in machine.processes():
        if "watchdog-" in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def billing(api: LambdaStandin) -> list[str]:
    """Instances at the stand-in that have not begun terminating."""
    return [i.id for i in api.state.instances.values() if i.status not in ("terminating", "terminated")]


@pytest.mark.parametrize("step", ["launching", "launched", "host-checked", "engine-started"])
def test_kill_9_at_a_step_then_down_and_gc_leave_no_instance(gpuctl, lambda_world: LambdaStandin, isolated: Path,
                                                             step: str) -> None:
    if step == "launching":  # the create is in flight when the process dies
        lambda_world.faults.next(Fault.delay(2.0, path=LAUNCH, method="POST"))
    name = f"k9-{step}"
    up = gpuctl_proc(*UP, "--name", name)
    if step == "launching":
        wait_until(lambda: bool(lambda_world.calls("POST", LAUNCH)), "the create to be sent", timeout=60)
    else:
        wait_for_event(isolated, name, step, up)
    up.kill()
    finish(up)
    down = gpuctl("down", name)
    assert down.exit_code == 0, down.stderr
    wait_until(lambda: len(lambda_world.state.instances) == 1, "the create to land", timeout=30)
    assert billing(lambda_world) == [], f"nothing bills after a kill at {step} and 'down'"
    assert json.loads(gpuctl("gc", "--dry-run", "--json").stdout) == []
    assert record(isolated, name)["status"] == "terminated"


def test_sigterm_while_the_create_is_in_flight_terminates_what_it_made(gpuctl, lambda_world: LambdaStandin,
                                                                      isolated: Path) -> None:
    lambda_world.faults.next(Fault.delay(2.0, path=LAUNCH, method="POST"))
    up = gpuctl_proc(*UP, "--name", "inflight")
    wait_until(lambda: bool(lambda_world.calls("POST", LAUNCH)), "the create to be sent", timeout=60)
    up.send_signal(signal.SIGTERM)
    code, _, stderr = finish(up)
    assert code == 130, stderr
    assert "waiting up to 60s for its answer" in stderr
    [instance] = lambda_world.state.instances.values()
    assert instance.status in ("terminating", "terminated")
    assert record(isolated, "inflight")["status"] == "terminated"
    assert gpuctl("down", "inflight").exit_code == 0 and billing(lambda_world) == []
