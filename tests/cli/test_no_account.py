"""The newcomer without a cloud account (issue 15): ``up`` proposes only offers it can launch, the missing
credentials are the error before any price question, and a record that never reached a provider goes
away without a key."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from tests.fakehost.cloud import add_deployment

#: nothing listens there: a live price query fails at once and the snapshot is used
_NOWHERE = "http://127.0.0.1:9"


def _deployments(project: Path) -> list[dict]:
    path = project / ".gpuctl" / "state.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    deployments = doc["deployments"]
    return list(deployments.values()) if isinstance(deployments, dict) else deployments


def test_up_without_any_key_names_every_variable_and_host_before_the_price(gpuctl, isolated: Path) -> None:
    result = gpuctl("up", "qwen2.5-7b", "-y")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for variable in ("RUNPOD_API_KEY", "LAMBDA_API_KEY", "AWS_PROFILE", "--host"):
        assert variable in lines[0]
    assert "/h" not in result.stderr and "deploy qwen" not in result.stderr  # no price shown, nothing proposed
    assert _deployments(isolated) == []
    assert not (isolated / ".gpuctl" / "secrets").exists() or not any((isolated / ".gpuctl" / "secrets").iterdir())


def test_up_without_the_chosen_providers_key_is_refused_before_the_price(gpuctl, isolated: Path) -> None:
    result = gpuctl("up", "qwen2.5-7b", "--provider", "lambda", "-y")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    assert "LAMBDA_API_KEY" in result.stderr and "RUNPOD_API_KEY" not in result.stderr
    assert "--host" in result.stderr
    assert _deployments(isolated) == []


def test_a_dry_run_plans_only_at_providers_with_credentials_and_says_which_it_skipped(gpuctl) -> None:
    env = {"LAMBDA_API_KEY": "secret_key", "GPUCTL_LAMBDA_API_URL": _NOWHERE}
    result = gpuctl("up", "qwen2.5-7b", "--dry-run", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["offer"]["provider"] == "lambda"
    skipped = [line for line in result.stderr.splitlines() if "without credentials" in line]
    assert len(skipped) == 1 and "runpod" in skipped[0] and "aws" in skipped[0], result.stderr


def test_a_dry_run_without_any_key_still_plans_and_warns(gpuctl) -> None:
    result = gpuctl("up", "qwen2.5-7b", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["offer"]["provider"]
    assert "has credentials: 'gpuctl up' would stop here" in result.stderr


def _never_launched(project: Path, name: str, provider: str) -> None:
    add_deployment(project, name, provider=provider, status="failed", error="RunPod API key is not set",
                   attempts=[{"provider": provider, "offer_id": f"{provider}:x", "idempotency_token": "gpuctl-t",
                              "at": datetime.now(timezone.utc).isoformat(), "error": "API key is not set",
                              "settled": True, "refused": True}])


def test_down_forgets_a_record_whose_create_was_refused_without_any_key(gpuctl, isolated: Path) -> None:
    _never_launched(isolated, "never-ran", "runpod")
    result = gpuctl("down", "never-ran", "-y")
    assert result.exit_code == 0, result.stderr
    assert [d["status"] for d in _deployments(isolated)] == ["terminated"]


def test_gc_sweeps_a_record_whose_create_was_refused_without_any_key(gpuctl, isolated: Path) -> None:
    _never_launched(isolated, "never-ran", "lambda")
    result = gpuctl("gc", "-y")
    assert result.exit_code == 0, result.stderr
    assert [d["status"] for d in _deployments(isolated)] == ["terminated"]


def test_a_refused_create_is_recorded_as_refused(gpuctl, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is set (the offer is proposed) but the provider refuses it: nothing was made; down needs no key."""
    from gpuctl.errors import CredentialsError
    from gpuctl.providers.runpod.provider import RunPodProvider

    def refuse(self, request):
        raise CredentialsError("RunPod refused the API key (401)")

    monkeypatch.setattr(RunPodProvider, "launch", refuse)
    env = {"RUNPOD_API_KEY": "bad", "GPUCTL_RUNPOD_API_URL": _NOWHERE}
    result = gpuctl("up", "qwen2.5-7b", "--provider", "runpod", "-y", env=env)
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    [record] = _deployments(isolated)
    assert record["attempts"][-1]["refused"] is True
    assert record["status"] == "terminated", record  # its own teardown needed no key either


def test_weights_pull_to_a_provider_without_its_key_names_the_key(gpuctl, isolated: Path) -> None:
    result = gpuctl("weights", "pull", "qwen2.5-7b", "--to", "runpod", "-y")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    assert "RUNPOD_API_KEY" in result.stderr and result.stderr.count("\n") == 1
    assert _deployments(isolated) == []
