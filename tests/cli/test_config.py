"""``gpuctl config``: the user config file, its mode, and redaction of secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

SECRET = "rp_live_0123456789abcdef"


def config_file() -> Path:
    return Path(os.environ["GPUCTL_CONFIG_DIR"]) / "config.yaml"


def test_set_creates_private_file_and_get_redacts(gpuctl):
    result = gpuctl("config", "set", "runpod.api_key", SECRET)
    assert result.exit_code == 0
    assert SECRET not in result.stdout + result.stderr
    path = config_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert gpuctl("config", "get", "runpod.api_key").stdout.strip() == "****cdef"
    assert gpuctl("config", "get", "runpod.api_key", "--reveal").stdout.strip() == SECRET


def test_list_redacts_and_reports_sources(gpuctl, monkeypatch):
    gpuctl("config", "set", "runpod.api_key", SECRET)
    gpuctl("config", "set", "prices.timeout", "4.5")
    monkeypatch.setenv("LAMBDA_API_KEY", "lambda-secret-key-value-99")
    result = gpuctl("config", "list", "--json")
    assert result.exit_code == 0
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["runpod.api_key"] == {"key": "runpod.api_key", "value": "****cdef", "source": "config",
                                      "secret": True, "description": "RunPod API key"}
    assert rows["lambda.api_key"]["source"] == "env LAMBDA_API_KEY"
    assert rows["lambda.api_key"]["value"] == "****e-99"
    assert rows["prices.timeout"]["value"] == 4.5
    assert rows["hf.token"]["source"] == "unset"
    assert SECRET not in result.stdout
    table = gpuctl("config", "list")
    assert SECRET not in table.stdout
    assert "lambda-secret-key-value-99" not in table.stdout


def test_env_wins_over_file(gpuctl, monkeypatch):
    gpuctl("config", "set", "hf.token", "hf_fromfile_123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_fromenv_987654321")
    from gpuctl.credentials import credential_value

    assert credential_value("hf.token") == "hf_fromenv_987654321"
    result = gpuctl("config", "set", "hf.token", "hf_other_value_0000")
    assert "HF_TOKEN is set in the environment and takes precedence" in result.stderr


def test_unknown_key_and_bad_value(gpuctl):
    result = gpuctl("config", "set", "runpod.apikey", "x")
    assert result.exit_code == 3  # docs/exit-codes.md: an unknown config key is not found
    assert "did you mean runpod.api_key" in result.stderr
    result = gpuctl("config", "set", "prices.timeout", "soon")
    assert result.exit_code == 2
    assert "takes a float" in result.stderr


def test_get_unset_is_not_found_and_unset_removes(gpuctl):
    assert gpuctl("config", "get", "aws.region").exit_code == 3
    gpuctl("config", "set", "aws.region", "eu-west-1")
    assert gpuctl("config", "get", "aws.region").stdout.strip() == "eu-west-1"
    assert gpuctl("config", "unset", "aws.region").exit_code == 0
    assert gpuctl("config", "get", "aws.region").exit_code == 3


def test_corrupt_config_file_is_exit_2(gpuctl):
    path = config_file()
    path.parent.mkdir(parents=True)
    path.write_text("- just\n- a list\n")
    result = gpuctl("config", "list")
    assert result.exit_code == 2
    assert str(path) in result.stderr
