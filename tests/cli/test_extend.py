"""``gpuctl extend NAME DURATION`` (issue 15: there was no way to extend a TTL), for a deployment whose TTL
only the record holds (a provider that runs the engine itself); the host watchdog's side is in
tests/integration/test_extend_fakehost.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from tests.fakehost.cloud import add_deployment


def _record(project: Path, **fields) -> datetime:
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    add_deployment(project, "pod", **{"provider": "runpod", "ttl_seconds": 3600, "expires_at": expires, **fields})
    return expires


def _expires(project: Path) -> datetime:
    doc = json.loads((project / ".gpuctl" / "state.json").read_text())
    return datetime.fromisoformat(doc["deployments"]["pod"]["expires_at"])


def test_extend_moves_the_records_expiry(gpuctl, isolated: Path) -> None:
    before = _record(isolated)
    result = gpuctl("extend", "pod", "2h")
    assert result.exit_code == 0, result.stderr
    assert _expires(isolated) == before + timedelta(hours=2)
    assert "now runs until" in result.stdout
    assert gpuctl("extend", "30m", "-q").stdout.strip() == (before + timedelta(hours=2, minutes=30)).isoformat()


@pytest.mark.parametrize(("fields", "args", "code", "message"), [
    ({}, ("pod", "30d"), ExitCode.USAGE, "maximum TTL"),
    ({"expires_at": None, "ttl_seconds": None}, ("pod", "1h"), ExitCode.USAGE, "has no TTL"),
    ({"status": "failed"}, ("pod", "1h"), ExitCode.USAGE, "not running"),
    ({}, ("pod", "soon"), ExitCode.USAGE, "not a duration"),
    ({}, ("nope", "1h"), ExitCode.NOT_FOUND, "no deployment named 'nope'"),
])
def test_refusals_change_nothing(gpuctl, isolated: Path, fields: dict, args: tuple[str, ...], code: int,
                                 message: str) -> None:
    before = _record(isolated, **fields)
    result = gpuctl("extend", *args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    if fields.get("expires_at", before):
        assert _expires(isolated) == before
