"""NAME defaults to the project's only active deployment (issue 15: the README's 'gpuctl down' failed as written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from tests.fakehost.cloud import add_deployment

_LOCAL = {"provider": "ssh", "host": "local", "container": "gpuctl-x", "endpoint": "http://127.0.0.1:9/v1",
          "served_model_name": "tiny"}


def test_env_takes_the_only_deployment(gpuctl, isolated: Path) -> None:
    add_deployment(isolated, "only-one", **_LOCAL)
    add_deployment(isolated, "old-one", **{**_LOCAL, "status": "terminated"})
    result = gpuctl("env")
    assert result.exit_code == 0, result.stderr
    assert "OPENAI_BASE_URL=" in result.stdout


@pytest.mark.parametrize("command", [["env"], ["logs"], ["down"], ["bench"], ["ssh", "--print"]])
def test_several_deployments_are_listed(gpuctl, isolated: Path, command: list[str]) -> None:
    add_deployment(isolated, "first", **_LOCAL)
    add_deployment(isolated, "second", **_LOCAL)
    result = gpuctl(*command)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr.count("\n") == 1 and "first, second" in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["env"], ["logs"], ["down"], ["bench"], ["ssh"]])
def test_no_deployment_is_not_found(gpuctl, command: list[str]) -> None:
    result = gpuctl(*command)
    assert result.exit_code == ExitCode.NOT_FOUND, result.stderr
    assert "no active deployment" in result.stderr and result.stderr.count("\n") == 1


def test_down_takes_the_only_deployment(gpuctl, isolated: Path) -> None:
    add_deployment(isolated, "never-ran", provider="runpod", status="failed",
                   attempts=[{"provider": "runpod", "offer_id": "x", "idempotency_token": "t", "refused": True}])
    result = gpuctl("down", "-y")
    assert result.exit_code == 0, result.stderr
    assert "never-ran: down" in result.stdout
