"""Shared fixtures: every test runs with private config/cache/home dirs and no real credentials."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest_plugins = ["tests.standins.fixtures", "tests.fakehost.fixtures"]

# Variables that could leak a developer's real accounts or settings into a test.
_SCRUBBED = (
    "RUNPOD_API_KEY", "LAMBDA_API_KEY", "HF_TOKEN", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "GPUCTL_PROJECT_DIR", "GPUCTL_RUNPOD_API_URL", "GPUCTL_LAMBDA_API_URL",
    "GPUCTL_DEBUG", "GPUCTL_YES", "HF_ENDPOINT", "GPUCTL_RUNPOD_PROXY_URL", "GPUCTL_CALLER_CIDR",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private world per test; returns the project directory (also the cwd)."""
    for var in _SCRUBBED:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    project = tmp_path / "project"
    for d in (home, project):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GPUCTL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GPUCTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never touch 169.254.169.254
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real hub: a test must point it at a stand-in
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def gpuctl() -> Callable[..., Result]:
    """Run the CLI in-process: ``gpuctl("prices", "--json")``; stdout and stderr kept apart."""
    from gpuctl.cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The isolated environment, for tests that run gpuctl as a real process."""
    return dict(os.environ)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that starts a fake GPU host (every one needs ``fakehost_env``) without ``integration``:
    ``-m 'not integration'`` must leave out every test that needs root, sshd and dockerd."""
    unmarked = [item.nodeid for item in items if "fakehost_env" in getattr(item, "fixturenames", ())
                and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError("tests using a fake GPU host must be marked integration: " + ", ".join(unmarked))
