"""The root command: help, version, global options, lazy loading and error translation."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from gpuctl.cli.commands import COMMANDS, CommandEntry

HEAVY = ("boto3", "botocore", "paramiko", "docker", "httpx", "questionary", "aiohttp", "pydantic", "rich")


def test_help_lists_every_command(gpuctl):
    result = gpuctl("--help")
    assert result.exit_code == 0
    for name, entry in COMMANDS.items():
        assert name in result.stdout
        assert entry.short_help in result.stdout
    assert "GPUCTL_PROJECT_DIR" in result.stdout
    assert result.stderr == ""


def test_version(gpuctl):
    from gpuctl import __version__

    result = gpuctl("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gpuctl {__version__}"


def test_no_arguments_prints_help(gpuctl):
    result = gpuctl()
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: gpuctl")


def test_unknown_command_is_one_line_with_close_match(gpuctl):
    result = gpuctl("pricse")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: no such command 'pricse' (hint: did you mean prices?)\n"


def test_bad_option_value_exit_2(gpuctl):
    result = gpuctl("completion", "tcsh")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Invalid value for '{bash|zsh|fish}'")
    assert "hint: see 'gpuctl completion --help'" in lines[0]


def test_unknown_option_exit_2(gpuctl):
    result = gpuctl("--bogus")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such option '--bogus'")
    assert len(result.stderr.strip().splitlines()) == 1


def _install_command(monkeypatch, name: str, command: click.Command) -> None:
    module = type(sys)("gpuctl_test_commands")
    module.cmd = command
    monkeypatch.setitem(sys.modules, "gpuctl_test_commands", module)
    monkeypatch.setitem(COMMANDS, name, CommandEntry("gpuctl_test_commands", "cmd", "test"))


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        ("provider", 4, "error: RunPod said no (hint: try later)"),
        ("credentials", 6, "error: no key (hint: set RUNPOD_API_KEY)"),
        ("interrupt", 130, None),
        ("unexpected", 1, "error: unexpected RuntimeError: boom (hint: rerun with GPUCTL_DEBUG=1"),
    ],
)
def test_errors_become_exit_codes(gpuctl, monkeypatch, raised, code, line):
    from gpuctl import errors

    @click.command()
    def cmd() -> None:
        if raised == "provider":
            raise errors.ProviderError("RunPod said no", "try later")
        if raised == "credentials":
            raise errors.CredentialsError("no key", "set RUNPOD_API_KEY")
        if raised == "interrupt":
            raise KeyboardInterrupt
        raise RuntimeError("boom")

    _install_command(monkeypatch, "explode", cmd)
    result = gpuctl("explode")
    assert result.exit_code == code
    assert "Traceback" not in result.stderr
    if line:
        assert result.stderr.startswith(line)
        assert len(result.stderr.strip().splitlines()) == 1
    else:
        assert result.stderr.strip() == "interrupted"


def test_debug_shows_traceback(gpuctl, monkeypatch):
    @click.command()
    def cmd() -> None:
        raise RuntimeError("boom")

    _install_command(monkeypatch, "explode", cmd)
    monkeypatch.setenv("GPUCTL_DEBUG", "1")
    result = gpuctl("explode")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: boom" in result.stderr


def test_global_json_flag_reaches_subcommand(gpuctl):
    before = json.loads(gpuctl("--json", "providers").stdout)
    after = json.loads(gpuctl("providers", "--json").stdout)
    assert before == after
    assert {row["name"] for row in before} >= {"runpod", "lambda", "aws"}


def test_project_dir_must_exist(gpuctl, tmp_path):
    result = gpuctl("--project-dir", str(tmp_path / "missing"), "init")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_nothing_heavy(flag, subprocess_env):
    code = (
        "import sys\n"
        "from gpuctl.__main__ import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = _run(["-c", code], subprocess_env)
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_python_dash_m_and_exit_code(subprocess_env):
    result = _run(["-m", "gpuctl", "nosuchcommand"], subprocess_env)
    assert result.returncode == 2
    assert result.stderr == "error: no such command 'nosuchcommand' (hint: see 'gpuctl --help' for the commands)\n"
    ok = _run(["-m", "gpuctl", "--version"], subprocess_env)
    assert ok.returncode == 0
    assert ok.stdout.startswith("gpuctl ")
