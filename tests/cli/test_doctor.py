"""``gpuctl doctor``: credentials proven against the stand-ins and moto, files, SSH key, tools, clock."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from moto import mock_aws

from gpuctl.doctor import run_checks
from gpuctl.errors import ProviderError
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.checks import api_check
from tests.standins.fixtures import lambda_api, runpod_api  # noqa: F401 (fixtures)
from tests.standins.server import Fault
from tests.unit.pricing_fakes import fake_provider, registry


def report(gpuctl, *args: str, code: int) -> dict:
    result = gpuctl("doctor", "--json", *args)
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def find(doc: dict, name: str, provider: str | None = None) -> dict:
    [check] = [c for c in doc["checks"] if c["name"] == name and c["provider"] == provider]
    return check


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def aws_creds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_without_credentials_every_provider_is_a_problem_with_its_fix_and_exit_6(gpuctl) -> None:
    doc = report(gpuctl, code=6)
    assert doc["ready"] == [] and doc["ok"] is False
    for provider, fix in [("runpod", "export RUNPOD_API_KEY=... or gpuctl config set runpod.api_key VALUE"),
                          ("lambda", "export LAMBDA_API_KEY=... or gpuctl config set lambda.api_key VALUE")]:
        check = find(doc, "credentials", provider)
        assert (check["status"], check["ok"], check["detail"], check["fix"]) == ("problem", False, "not set", fix)
    assert "aws configure" in find(doc, "credentials", "aws")["fix"]
    assert not [c for c in doc["checks"] if c["name"] == "api"], "no live call without credentials"
    assert find(doc, "clock") == {"name": "clock", "provider": None, "status": "skipped", "ok": True, "fix": None,
                                  "detail": "no provider answered to compare the clock with"}
    assert doc["clock_skew_seconds"] is None
    assert {c["provider"] for c in doc["checks"]} == {"runpod", "lambda", "aws", None}, "no row for --host's ssh"


def test_table_lists_each_problem_with_its_fix(gpuctl) -> None:
    result = gpuctl("doctor")
    assert result.exit_code == 6
    fixes = result.stdout.split("to fix:\n")[1].splitlines()
    assert "  lambda credentials: export LAMBDA_API_KEY=... or gpuctl config set lambda.api_key VALUE" in fixes
    assert "  hf-token: export HF_TOKEN=... or gpuctl config set hf.token VALUE" in fixes
    assert result.stderr == ("error: no provider has usable credentials "
                             "(hint: set one provider's credentials as its fix says, or check a machine of yours with "
                             "'gpuctl doctor --host USER@ADDR')\n")


def test_a_working_key_is_proven_with_one_read_and_the_clock_compared(gpuctl, runpod_api) -> None:  # noqa: F811
    doc = report(gpuctl, code=0)
    assert doc["ready"] == ["runpod"] and doc["ok"] is True
    check = find(doc, "api", "runpod")
    assert check["status"] == "ok"
    assert check["detail"].startswith("credentials accepted (GET /v2/pods, ")
    assert [(r.method, r.path, r.authorized) for r in runpod_api.requests] == [("GET", "/v2/pods", True)]
    assert find(doc, "clock")["status"] == "ok"
    assert abs(doc["clock_skew_seconds"]) < 5
    assert gpuctl("doctor", "-q").stdout == "runpod\n"


def test_a_rejected_key_is_a_problem_but_another_ready_provider_keeps_exit_0(
        gpuctl, runpod_api, lambda_api, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("LAMBDA_API_KEY", "secret_wrong_key_0123456789abcdef")
    doc = report(gpuctl, code=0)
    check = find(doc, "api", "lambda")
    assert check["status"] == "problem"
    assert check["detail"].startswith(
        "credentials rejected: Lambda Cloud rejected the API key (401 global/invalid-api-key")
    assert "LAMBDA_API_KEY" in check["fix"]
    assert doc["ready"] == ["runpod"]
    assert "secret_wrong_key" not in json.dumps(doc)


def test_rejected_everywhere_is_exit_6(gpuctl, runpod_api, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong_key_0123456789")
    doc = report(gpuctl, code=6)
    assert find(doc, "api", "runpod")["status"] == "problem"
    assert doc["ready"] == []


def test_an_unreachable_provider_is_a_warning_not_a_rejection(gpuctl, monkeypatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_some_key_0123456789")
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", f"http://127.0.0.1:{closed_port()}")
    doc = report(gpuctl, code=0)
    check = find(doc, "api", "runpod")
    assert check["status"] == "warning"
    assert check["detail"].startswith("could not reach it, credentials not verified: cannot reach the RunPod API at")
    assert doc["ready"] == ["runpod"]


def test_a_hanging_provider_is_bounded_by_the_timeout(gpuctl, runpod_api) -> None:  # noqa: F811
    runpod_api.faults.always(Fault.hang(10))
    started = time.monotonic()
    doc = report(gpuctl, "--timeout", "1", code=0)
    assert time.monotonic() - started < 4
    check = find(doc, "api", "runpod")
    assert check["status"] == "warning"
    assert "did not answer GET /pods within 1 s" in check["detail"]


def test_aws_credentials_are_proven_with_sts(gpuctl, aws_creds) -> None:
    doc = report(gpuctl, code=0)
    assert doc["ready"] == ["aws"]
    check = find(doc, "api", "aws")
    assert check["status"] == "ok" and check["detail"].startswith("credentials accepted (STS GetCallerIdentity, ")


def test_a_corrupt_state_file_is_exit_2_with_its_fix(gpuctl, runpod_api, isolated: Path) -> None:  # noqa: F811
    (isolated / ".gpuctl").mkdir()
    (isolated / ".gpuctl" / "state.json").write_text("{")
    result = gpuctl("doctor", "--json")
    assert result.exit_code == 2
    check = find(json.loads(result.stdout), "state")
    assert check["status"] == "problem" and "is corrupt" in check["detail"]
    assert check["fix"].startswith("inspect .gpuctl/state.json; gpuctl will not overwrite it")
    assert result.stderr.startswith("error: 1 problem(s) every deployment would hit: state: ")


def test_ssh_key_mode_and_content(gpuctl, isolated: Path) -> None:
    from gpuctl.host.keys import ensure_project_key

    key = ensure_project_key(isolated / ".gpuctl").private_path
    check = find(report(gpuctl, code=6), "ssh-key")
    assert (check["status"], check["detail"]) == ("ok", f"{key}, mode 0600")
    key.chmod(0o644)
    check = find(report(gpuctl, code=2), "ssh-key")
    assert check["status"] == "problem" and check["fix"] == f"chmod 600 {key}"
    key.chmod(0o600)
    key.write_text("not a key")
    check = find(report(gpuctl, code=2), "ssh-key")
    assert check["status"] == "problem" and "is not a usable OpenSSH key" in check["detail"]


def test_files_and_tools(gpuctl, isolated: Path, monkeypatch) -> None:
    gpuctl("config", "set", "prices.timeout", "7")
    config = Path(os.environ["GPUCTL_CONFIG_DIR"]) / "config.yaml"
    config.chmod(0o644)
    (isolated / "gpuctl.yaml").write_text("model: llama-3-8b\nttl: 2h\n")
    monkeypatch.setenv("PATH", str(isolated))  # neither ssh nor docker
    doc = report(gpuctl, code=6)
    assert find(doc, "config") == {"name": "config", "provider": None, "status": "warning", "ok": True,
                                   "detail": f"{config} is readable by other users", "fix": f"chmod 600 {config}"}
    assert find(doc, "project")["detail"] == f"{isolated / 'gpuctl.yaml'}: model llama-3-8b, ttl 2h"
    assert find(doc, "docker")["status"] == "warning"
    assert find(doc, "ssh")["detail"].startswith("'ssh' not found on PATH")
    (isolated / "gpuctl.yaml").write_text("modle: x\n")
    check = find(report(gpuctl, code=2), "project")
    assert check["status"] == "problem" and check["detail"].endswith("field 'modle': unknown field")


# -- the core, with throwaway providers and clocks ----------------------------------------------------

def test_skew_is_measured_against_the_answers_date(runpod_api, isolated: Path) -> None:  # noqa: F811
    reg = ProviderRegistry.discover()
    late = run_checks(isolated, reg, now=lambda: datetime.now(timezone.utc) - timedelta(minutes=10))
    [clock] = [c for c in late.checks if c.name == "clock"]
    assert clock.status == "problem"
    assert re.match(r"local clock (599|600)s behind runpod's: AWS refuses", clock.detail), clock.detail
    assert not late.ok and late.ready == ["runpod"]
    drift = run_checks(isolated, reg, now=lambda: datetime.now(timezone.utc) + timedelta(seconds=45))
    [clock] = [c for c in drift.checks if c.name == "clock"]
    assert clock.status == "warning" and "ahead of runpod's" in clock.detail
    assert drift.ok


def test_a_plugin_without_a_live_check_is_skipped_and_a_failing_check_is_a_warning(isolated: Path) -> None:
    def warning() -> str | None:
        raise ProviderError("RunPod API failed on GET /pods (500)", "try again")

    failing = fake_provider("runpod")
    failing.doctor_checks = lambda self: [api_check("GET /v2/pods", warning)]  # type: ignore[method-assign]
    buggy = fake_provider("buggy")
    buggy.doctor_checks = lambda self: 1 / 0  # type: ignore[method-assign]
    reg = registry(fake_provider("alpha"), failing, fake_provider("nokey", creds=False), buggy)

    from gpuctl.plugins import BrokenPlugin

    reg.broken.append(BrokenPlugin("vast", "gpuctl-vast", "ImportError: no module named vastai"))
    doc = run_checks(isolated, reg)
    rows = {(c.name, c.provider): c for c in doc.checks}
    assert rows["api", "alpha"].status == "skipped"
    assert rows["api", "runpod"].status == "warning" and rows["api", "runpod"].fix == "try again"
    assert rows["credentials", "nokey"].fix == "export NOKEY_KEY=..."
    assert ("api", "nokey") not in rows
    assert rows["plugin", "buggy"].status == "problem"
    assert rows["plugin", "buggy"].detail == ("provider plugin 'buggy' failed: doctor_checks() raised "
                                              "ZeroDivisionError: division by zero")
    assert doc.ready == ["alpha", "runpod"]
    vast = rows["plugin", "vast"]
    assert (vast.status, vast.fix) == ("problem", "reinstall or upgrade gpuctl-vast")
    assert doc.ok, "a broken plugin does not stop the providers that load"
