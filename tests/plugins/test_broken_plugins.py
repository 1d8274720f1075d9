"""Plugins that fail every way a plugin can (tests/plugins/broken_gpus: fails to import, not a provider, a
property that raises, a constructor that raises, credentials that raise, every method raising, hanging or
answering garbage), installed into a separate venv beside a well-behaved plugin with a key of its own.
Every command still works for the other providers, keeps the exit code it has without them, and names
the broken plugins in exactly one warning line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.fakehost.cloud import add_deployment, write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.plugins.venvs import gpuctl, plugin_venv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

PACKAGE = Path(__file__).resolve().parent / "broken_gpus"
#: broken before any command runs: every command that looks at the providers names them
UNLOADABLE = ["ghost", "notaclass", "badprop"]
#: broken as soon as a command creates them or asks for their credentials
UNUSABLE = ["badinit", "badcreds"]
#: broken in the methods the command calls (every method of theirs fails, one way each)
MISBEHAVING = ["raiser", "hanger", "garbage"]
QUIET_KEY = "quiet-secret-key-0123456789"


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_venv(tmp_path_factory.mktemp("venv"), PACKAGE)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def names_once(stderr: str, broken: list[str]) -> str:
    """The one warning line naming broken plugins; it names exactly ``broken``."""
    [line] = [w for w in warnings(stderr) if "provider plugin" in w]
    named = [name for name in [*UNLOADABLE, *UNUSABLE, *MISBEHAVING] if f" {name} " in line or f"'{name}'" in line]
    assert sorted(named) == sorted(broken), line
    return line


def test_every_command_still_works_for_the_others(python: Path, fake_gpu_host: FakeGpuHost,
                                                 fakehost_env: FakeHostEnv, isolated: Path) -> None:
    env = dict(os.environ)
    baseline = Path(sys.executable)  # the same gpuctl without the broken plugins
    write_recipe(isolated)

    def both(*args: str, touched: list[str]) -> tuple[object, object]:
        """Run ``args`` with and without the broken plugins: same exit code, the broken ones named once."""
        plain, broken = gpuctl(baseline, *args, env=env), gpuctl(python, *args, env=env)
        assert broken.returncode == plain.returncode, (args, broken.stderr)
        line = names_once(broken.stderr, [*UNLOADABLE, *touched])
        assert [w for w in warnings(broken.stderr) if w != line] == warnings(plain.stderr), "no other warning"
        assert "Traceback" not in broken.stderr
        return plain, broken

    everyone = [*UNUSABLE, *MISBEHAVING]
    plain, broken = both("prices", "--json", touched=everyone)
    assert json.loads(plain.stdout) == [o for o in json.loads(broken.stdout) if o["provider"] != "quiet"]
    assert {o["provider"] for o in json.loads(broken.stdout)} == {"aws", "lambda", "runpod", "quiet"}

    plain, broken = both("up", "tiny", "--dry-run", "--json", touched=everyone)
    assert json.loads(broken.stdout)["offer"] == json.loads(plain.stdout)["offer"]

    plain, broken = both("providers", "--json", touched=UNUSABLE)
    rows = {row["name"]: row for row in json.loads(broken.stdout)}
    assert {name: rows[name]["status"] for name in [*UNLOADABLE, *UNUSABLE]} == dict.fromkeys(
        [*UNLOADABLE, *UNUSABLE], "broken")
    assert rows["badprop"]["error"] == "'display_name' must be a non-empty string"
    assert rows["badcreds"]["error"] == ("provider plugin 'badcreds' failed: credentials() raised KeyError: "
                                         "'credentials'")
    assert (rows["quiet"]["status"], rows["quiet"]["credentials"]) == ("ok", "missing")
    assert all(rows[name] == row for name, row in ((r["name"], r) for r in json.loads(plain.stdout)))

    plain, broken = both("doctor", "--json", touched=everyone)
    checks = {(c["name"], c["provider"]): c for c in json.loads(broken.stdout)["checks"]}
    assert checks["plugin", "hanger"]["detail"] == ("provider plugin 'hanger' did not return from doctor_checks() "
                                                    "within 1s")
    assert checks["plugin", "garbage"]["detail"].startswith("provider plugin 'garbage' returned from doctor_checks()")
    assert checks["plugin", "ghost"]["fix"] == "reinstall or upgrade broken-gpus"

    both("gc", "--dry-run", "--json", touched=everyone)
    both("weights", "ls", touched=everyone)
    both("status", "--json", touched=[])

    # a well-behaved plugin's own key: known to gpuctl config, refused by nothing
    for args in (("config", "set", "quiet.api_key", QUIET_KEY), ("config", "get", "quiet.api_key")):
        result = gpuctl(python, *args, env=env)
        assert result.returncode == 0, result.stderr
        assert QUIET_KEY not in result.stdout + result.stderr
        names_once(result.stderr, UNLOADABLE)
    listed = gpuctl(python, "config", "list", "--json", env=env)
    assert {row["key"]: row["source"] for row in json.loads(listed.stdout)}["quiet.api_key"] == "config"
    typo = gpuctl(python, "config", "set", "quiet.apikey", "x", env=env)
    assert typo.returncode == 3 and "did you mean quiet.api_key" in typo.stderr
    ghost = gpuctl(python, "config", "set", "ghost.api_key", "x", env=env)
    assert ghost.returncode == 3 and "provider plugin 'ghost' failed to load, so its keys are unknown" in ghost.stderr

    # a deployment goes up, is listed, and comes down; the broken plugins are named once each time
    host = ["--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key), "--accept-host-key"]
    up = gpuctl(python, "up", "tiny", *host, "--name", "e2e", "-y", env=env)
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines()[0] == "e2e is ready: http://127.0.0.1:8000/v1"
    [row] = json.loads(gpuctl(python, "status", "--json", "--no-probe", env=env).stdout)
    assert (row["name"], row["status"], row["provider"]) == ("e2e", "running", "ssh")
    down = gpuctl(python, "down", "e2e", env=env)
    assert down.returncode == 0, down.stderr
    names_once(down.stderr, UNLOADABLE)
    assert fake_gpu_host.containers() == []

    # a deployment of a broken plugin fails alone: its own error names it, and no warning repeats it
    add_deployment(isolated, "stuck", provider="raiser", instance_id="r-1")
    stuck = gpuctl(python, "down", "stuck", env=env)
    assert stuck.returncode == 4
    assert "error: provider plugin 'raiser' failed: get() raised RuntimeError: get exploded" in stuck.stderr or (
        "error: provider plugin 'raiser' failed: terminate() raised RuntimeError: terminate exploded" in stuck.stderr)
    names_once(stuck.stderr, UNLOADABLE)
    sweep = gpuctl(python, "gc", "--dry-run", "--json", env=env)
    assert sweep.returncode == 0
    assert [(leftover["deployment"], leftover["provider"]) for leftover in json.loads(sweep.stdout)] == [
        ("stuck", "raiser")]
