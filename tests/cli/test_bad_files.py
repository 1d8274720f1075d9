"""Files the user controls, broken: every command that reads them says which file, which field, and exits 2."""

from __future__ import annotations

import json
from pathlib import Path


def test_invalid_project_file_stops_up_with_file_and_field(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("model: llama-3-8b\nengine: triton\n")
    result = gpuctl("up", "--dry-run")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {isolated / 'gpuctl.yaml'}: field 'engine': "
                               "Input should be 'vllm', 'sglang' or 'tgi'")


def test_corrupt_state_file_stops_status_and_is_left_as_it_was(gpuctl, isolated: Path) -> None:
    state = isolated / ".gpuctl" / "state.json"
    state.parent.mkdir()
    state.write_text('{"schema_version": 1, "deployments": {')
    for args in (("status", "--no-probe"), ("down", "--all")):
        result = gpuctl(*args)
        assert result.exit_code == 2, args
        assert "state.json is corrupt" in result.stderr
        assert "Traceback" not in result.stderr
    assert state.read_text() == '{"schema_version": 1, "deployments": {'


def test_state_from_a_newer_gpuctl_is_refused(gpuctl, isolated: Path) -> None:
    state = isolated / ".gpuctl" / "state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"schema_version": 99, "deployments": {}}))
    result = gpuctl("status", "--no-probe")
    assert result.exit_code == 2
    assert "written by a newer gpuctl" in result.stderr and "pip install -U gpuctl" in result.stderr
