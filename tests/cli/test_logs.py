"""``gpuctl logs NAME``: the engine's output, from the provider or from the container on the host.

Logs from a real container (and ``-f``) are covered end to end in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.deploy import access
from gpuctl.providers.runpod.provider import RunPodProvider
from tests.fakehost.cloud import Cloud, add_deployment
from tests.providers.launch_fakes import SECRETS, offer, request, vllm_engine


def test_a_provider_run_engine_logs_come_from_the_provider(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "pod", provider="fakepod", instance_id="fakepod-7")
    result = gpuctl("logs", "pod", "--tail", "10")
    assert result.exit_code == 0
    assert result.stdout == "engine log of fakepod-7\n"


def test_a_host_deployment_without_a_container_yet(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "early", provider="ssh", status="starting", host="local")
    result = gpuctl("logs", "early")
    assert result.exit_code == 2
    assert "'early' has no engine container yet (status starting)" in result.stderr


def test_unknown_name(gpuctl, fake_cloud: Cloud) -> None:
    result = gpuctl("logs", "nope")
    assert result.exit_code == 3 and "no deployment named 'nope'" in result.stderr


def test_following_a_runpod_pod_prints_only_new_lines_until_it_is_gone(gpuctl, runpod_api, isolated: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pod = RunPodProvider().launch(request(offer("runpod", "NVIDIA L40S", "US-TX-3", tier="secure"),
                                          engine=vllm_engine(), secrets=dict(SECRETS)))
    add_deployment(isolated, "pod", provider="runpod", instance_id=pod.id, status="running")
    record = runpod_api.state.pods[pod.id]
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # each poll's wait: the pod writes, then it is deleted
        pauses.append(seconds)
        if len(pauses) == 1:
            record.log += ["INFO request 1", "INFO request 2"]
        else:
            RunPodProvider().terminate(pod.id)

    monkeypatch.setattr(access, "_pause", pause)
    result = gpuctl("logs", "-f", "pod", "--tail", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "INFO Model loaded.\nINFO request 1\nINFO request 2\n"
    assert pauses == [access.FOLLOW_POLL_S, access.FOLLOW_POLL_S]
