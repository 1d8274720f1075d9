"""An engine that never served is killed after a few seconds when its deployment is removed (issue 15: Ctrl-C
during the engine start waited 30 s silently), and the step says how long it may take."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from gpuctl.deploy.host_cleanup import UNSERVED_STOP_TIMEOUT_S, clean_deployment
from gpuctl.deploy.removal import Removals
from gpuctl.host.leftovers import SERVED_STOP_S
from gpuctl.models.deployment import Deployment


class _Docker:
    def __init__(self, shell: Any, sudo: bool = False) -> None:
        pass

    def __enter__(self) -> _Docker:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Shell:
    where = "root@gpu-box:22"


@pytest.mark.parametrize(("ready_at", "expected"), [
    (None, UNSERVED_STOP_TIMEOUT_S), (datetime.now(timezone.utc), SERVED_STOP_S)])
def test_stop_timeout_by_whether_it_served(monkeypatch: pytest.MonkeyPatch, ready_at: datetime | None,
                                           expected: int) -> None:
    import gpuctl.host.docker as docker
    import gpuctl.host.leftovers as leftovers

    asked: list[int] = []

    def remove_deployment(shell: Any, **kwargs: Any) -> list[str]:
        asked.append(kwargs["stop_timeout"])
        return []

    monkeypatch.setattr(docker, "DockerEngine", _Docker)
    monkeypatch.setattr(leftovers, "remove_deployment", remove_deployment)
    deployment = Deployment(name="x", model="m", provider="ssh", idempotency_token="t", container="gpuctl-x",
                            ready_at=ready_at)
    clean_deployment(_Shell(), deployment, Removals())  # type: ignore[arg-type]
    assert asked == [expected]
    assert UNSERVED_STOP_TIMEOUT_S < SERVED_STOP_S
