"""``up --host`` on a GPU another model already fills (issue 15: it put a second model there, which then failed
to load): refused before anything is started, naming the GPU and what is in use."""

from __future__ import annotations

import pytest

from gpuctl.deploy.hosts import host_offer
from gpuctl.errors import ExitCode, NoCapacityError
from gpuctl.host.nvidia import QUERY_ARGV
from gpuctl.host.target import parse_target
from tests.fakehost.shells import ScriptedShell


def smi(*rows: str) -> ScriptedShell:
    return ScriptedShell().on(*QUERY_ARGV, stdout="".join(f"{i}, {r}\n" for i, r in enumerate(rows)))


def test_a_full_gpu_is_no_capacity() -> None:
    with pytest.raises(NoCapacityError) as caught:
        host_offer(smi("NVIDIA L40S, 46068, 0, 0", "NVIDIA L40S, 46068, 41000, 97"), parse_target("local"))
    assert caught.value.exit_code == ExitCode.NO_CAPACITY
    assert "GPU 1" in caught.value.message and "40.0 of 45.0 GiB in use" in caught.value.message
    assert "nvidia-smi" in caught.value.hint and "gpuctl status" in caught.value.hint


@pytest.mark.parametrize("used", ["0", "600", "[N/A]"])
def test_an_idle_or_unreadable_gpu_is_offered(used: str) -> None:
    offer = host_offer(smi(f"NVIDIA L40S, 46068, {used}, 0"), parse_target("local"))
    assert offer.gpu == "L40S"
