"""The example plugin of docs/plugins.md, installed into a separate venv and driven as a user would drive it:
``gpuctl providers``, ``config set`` of its key, ``prices``, ``doctor``, ``up`` onto a fake GPU host (the
plugin's own stand-in API hands out the host's address as its machine) -> ``status`` -> ``down`` ->
``gc``, with nothing left behind and the built-in providers unaffected. Its own tests pass too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost
from tests.plugins.venvs import gpuctl, plugin_venv

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "gpuctl-tinycloud"
KEY = "tc-live-key-e2e-0123456789"


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_venv(tmp_path_factory.mktemp("venv"), EXAMPLE)


def test_the_example_plugins_own_tests_pass_in_its_venv(python: Path, subprocess_env: dict[str, str]) -> None:
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=EXAMPLE,
                            capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_help_loads_no_provider_and_no_plugin(python: Path, subprocess_env: dict[str, str]) -> None:
    code = ("import sys\nfrom gpuctl.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('gpuctl.providers', 'gpuctl.plugins', "
            "'gpuctl_tinycloud'))), file=sys.stderr)\n")
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert "Commands:" in result.stdout
    assert result.stderr.strip() == "[]"


@pytest.fixture
def standin(python: Path, make_fake_gpu_host, tmp_path: Path) -> Iterator[tuple[str, FakeGpuHost]]:
    """The example's stand-in API, run as its own process, whose machines are a fake GPU host (the project's
    key lands in the host's authorized_keys, as cloud-init would put it)."""
    host = make_fake_gpu_host()
    process = subprocess.Popen(
        [str(python), str(EXAMPLE / "tests" / "standin.py"), "--key", KEY, "--machine-host", host.address,
         "--ssh-user", "root", "--authorized-keys", str(host.home / ".ssh" / "authorized_keys")],
        stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("listening on "), line
        yield line.split()[-1], host
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def machines(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/machines", headers={"Authorization": f"Bearer {KEY}"}).json()["machines"]


@pytest.mark.integration
def test_a_third_party_provider_from_prices_to_zero_spend(python: Path, standin: tuple[str, FakeGpuHost],
                                                          isolated: Path) -> None:
    url, host = standin
    env = dict(os.environ)  # the isolated dirs, and the fake host's weights hub as HF_ENDPOINT

    listed = gpuctl(python, "providers", "--json", env=env)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    mine = rows["tinycloud"]
    assert (mine["status"], mine["package"], mine["version"], mine["credentials"]) == (
        "ok", "gpuctl-tinycloud", "0.1.0", "missing")
    assert mine["capabilities"] == ["launch", "list-by-tag", "ssh-machine"]
    assert mine["config_keys"] == ["tinycloud.api_key", "tinycloud.api_url"]
    assert "TINYCLOUD_API_KEY" in mine["hint"]
    assert {name: row["status"] for name, row in rows.items() if row["package"] == "gpuctl"} == {
        "aws": "ok", "lambda": "ok", "runpod": "ok", "ssh": "ok"}

    # without a key: its dated snapshot, beside the built-ins' own
    offline = json.loads(gpuctl(python, "prices", "--json", env=env).stdout)
    assert {(o["provider"], o["source"]) for o in offline} >= {
        ("tinycloud", "snapshot"), ("runpod", "snapshot"), ("lambda", "snapshot"), ("aws", "snapshot")}

    for key, value in (("tinycloud.api_key", KEY), ("tinycloud.api_url", url)):
        assert gpuctl(python, "config", "set", key, value, env=env).returncode == 0
    shown = gpuctl(python, "config", "get", "tinycloud.api_key", env=env)
    assert shown.stdout.strip() == "****" + KEY[-4:] and KEY not in shown.stdout + shown.stderr
    settings = {row["key"]: row for row in json.loads(gpuctl(python, "config", "list", "--json", env=env).stdout)}
    assert (settings["tinycloud.api_url"]["value"], settings["tinycloud.api_key"]["secret"]) == (url, True)
    now = {row["name"]: row for row in json.loads(gpuctl(python, "providers", "--json", env=env).stdout)}
    assert (now["tinycloud"]["credentials"], now["tinycloud"]["credential_source"]) == (
        "present", "config tinycloud.api_key")

    live = json.loads(gpuctl(python, "prices", "--provider", "tinycloud", "--json", env=env).stdout)
    assert [(o["instance_type"], o["gpu"], o["price_per_hour"], o["source"]) for o in live] == [
        ("tc.l40s.1x", "L40S", 0.99, "live")]

    doctor = json.loads(gpuctl(python, "doctor", "--json", env=env).stdout)
    assert doctor["ready"] == ["tinycloud"]
    [api] = [c for c in doctor["checks"] if c["provider"] == "tinycloud" and c["name"] == "api"]
    assert api["status"] == "ok" and api["detail"].startswith("credentials accepted (GET /v1/machines")

    write_recipe(isolated)
    up = gpuctl(python, "up", "tiny", "--provider", "tinycloud", "--gpu", "L40S", "--name", "e2e", "--ttl", "1h", "-y",
                env=env)
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines()[0] == "e2e is ready: http://127.0.0.1:8000/v1"
    [machine] = machines(url)
    assert (machine["type"], machine["state"], machine["labels"]["gpuctl-deployment"]) == (
        "tc.l40s.1x", "running", "e2e")
    assert host.containers() == ["gpuctl-e2e running"]

    [row] = json.loads(gpuctl(python, "status", "--json", env=env).stdout)
    assert (row["name"], row["status"], row["provider"], row["gpu"], row["price_per_hour"]) == (
        "e2e", "running", "tinycloud", "L40S", 0.99)

    down = gpuctl(python, "down", "e2e", env=env)
    assert down.returncode == 0, down.stderr
    assert machines(url) == []  # deleted: nothing bills (a real machine takes its containers with it)

    sweep = gpuctl(python, "gc", "--dry-run", "--json", env=env)
    assert sweep.returncode == 0 and json.loads(sweep.stdout) == [], sweep.stderr
    assert "warning" not in sweep.stderr
