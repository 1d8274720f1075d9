"""Small building blocks: durations, error lines, log redaction, shipped data folders."""

from __future__ import annotations

import logging

import pytest

from gpuctl.durations import format_duration, parse_duration
from gpuctl.errors import ExitCode, NoCapacityError, UsageError
from gpuctl.logs import SecretFilter
from gpuctl.resources import DATA_FOLDERS, data_dir


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45m", 2700), ("2h", 7200),
                                               ("1h30m", 5400), ("1d", 86400), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2x", "h", "0", "-5m"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def test_format_duration_roundtrip():
    assert format_duration(5400) == "1h30m"
    assert parse_duration(format_duration(93784)) == 93784


def test_exit_codes_are_the_documented_ones():
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "UNEXPECTED": 1, "USAGE": 2, "NOT_FOUND": 3, "PROVIDER": 4, "NO_CAPACITY": 5,
        "CREDENTIALS": 6, "TIMEOUT": 7, "HEALTH": 8, "INTERRUPTED": 130}


def test_error_is_one_line_with_hint():
    err = NoCapacityError("no L40S\n  in US-KS-2")
    assert err.one_line().startswith("no L40S in US-KS-2 (hint: try another GPU")
    assert err.exit_code == 5


def test_secret_filter_scrubs_messages():
    record = logging.LogRecord("gpuctl", logging.INFO, __file__, 1, "key=%s ok", ("rp_secret_abcdef",), None)
    SecretFilter(["rp_secret_abcdef", ""]).filter(record)
    assert record.getMessage() == "key=**** ok"


def test_verbose_logging_never_prints_secrets(gpuctl, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rp_verysecret_123456")
    result = gpuctl("-vv", "providers")
    logging.getLogger("gpuctl.test").info("header Authorization: Bearer rp_verysecret_123456")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if any(isinstance(f, SecretFilter) for f in handler.filters):
            root.removeHandler(handler)
    assert "rp_verysecret_123456" not in result.stdout + result.stderr


@pytest.mark.parametrize("folder", DATA_FOLDERS)
def test_data_folders_resolve(folder):
    assert data_dir(folder).is_dir()
