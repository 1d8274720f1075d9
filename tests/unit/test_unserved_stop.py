"""An engine that never served is killed after a few seconds, not docker's 30 (issue 15: Ctrl-C during the
engine start waited 30 s silently), and the step says how long it may take."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from gpuctl.deploy.host_cleanup import UNSERVED_STOP_TIMEOUT_S, clean_deployment
from gpuctl.deploy.removal import Removals
from gpuctl.host.docker import STOP_TIMEOUT_S
from gpuctl.models.deployment import Deployment


class _Docker:
    timeouts: list[int] = []

    def __init__(self, shell: Any, sudo: bool = False) -> None:
        pass

    def remove(self, name: str, stop_timeout: int = STOP_TIMEOUT_S) -> bool:
        self.timeouts.append(stop_timeout)
        return True


class _Shell:
    where = "root@gpu-box:22"


@pytest.mark.parametrize(("ready_at", "expected"), [
    (None, UNSERVED_STOP_TIMEOUT_S), (datetime.now(timezone.utc), STOP_TIMEOUT_S)])
def test_stop_timeout_by_whether_it_served(monkeypatch: pytest.MonkeyPatch, ready_at: datetime | None,
                                           expected: int) -> None:
    import gpuctl.deploy.host_cleanup as cleanup
    import gpuctl.host.docker as docker

    _Docker.timeouts = []
    monkeypatch.setattr(docker, "DockerEngine", _Docker)
    monkeypatch.setattr(cleanup, "stop_watchdogs", lambda *args, **kwargs: None)
    monkeypatch.setattr(cleanup, "find_watchdogs", lambda *args, **kwargs: [])
    deployment = Deployment(name="x", model="m", provider="ssh", idempotency_token="t", container="gpuctl-x",
                            ready_at=ready_at)
    clean_deployment(_Shell(), deployment, Removals())  # type: ignore[arg-type]
    assert _Docker.timeouts == [expected]
    assert UNSERVED_STOP_TIMEOUT_S < STOP_TIMEOUT_S
