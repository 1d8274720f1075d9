"""gpuctl in pipelines: every listing command takes --json, -q prints only the essential value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from gpuctl.cli import cli
from gpuctl.cli.commands import COMMANDS

#: commands whose output is data a script may want: each must take --json
JSON = {
    "prices", "models", "models show", "fit", "up", "status", "down", "gc", "providers", "config list",
    "config get", "init", "doctor", "bench", "weights ls", "weights pull", "weights verify", "weights rm",
    "export k8s", "scale", "top", "cost",
}
#: commands without --json, and why
NO_JSON = {
    "logs": "prints the engine's own log lines",
    "ssh": "becomes ssh (a shell, a command or a tunnel)",
    "env": "prints export lines for eval",
    "completion": "prints a shell script",
    "config set": "writes the config file; prints nothing on stdout",
    "config unset": "writes the config file; prints nothing on stdout",
}


def walk(group: click.Group, ctx: click.Context, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from walk(command, click.Context(command, parent=ctx, info_name=name), f"{prefix}{name} ")


def options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_every_command_is_classified_and_listing_commands_take_json() -> None:
    seen = dict(walk(cli, click.Context(cli, info_name="gpuctl")))
    groups = {path for path, command in seen.items() if isinstance(command, click.Group)} - JSON
    unclassified = set(seen) - JSON - set(NO_JSON) - groups
    assert not unclassified, f"decide whether these print data (add to JSON or NO_JSON): {sorted(unclassified)}"
    assert set(COMMANDS) <= set(seen)
    missing = sorted(path for path in JSON if "--json" not in options(seen[path]))
    assert not missing, f"listing commands without --json: {missing}"


@pytest.mark.parametrize("args", [
    ["prices"], ["models"], ["models", "show", "llama-3-8b"], ["fit", "llama-3-8b"], ["status"], ["providers"],
    ["config", "list"], ["gc", "--dry-run"], ["down", "--all"], ["up", "llama-3-8b", "--dry-run"], ["init"],
    ["export", "k8s", "llama-3-8b", "--gpu", "l4"],
])
def test_json_output_is_parseable_and_alone_on_stdout(gpuctl, args: list[str]) -> None:
    result = gpuctl(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert isinstance(json.loads(result.stdout), (list, dict))
    assert gpuctl("--json", *args[:1], *(["--force"] if args == ["init"] else args[1:])).exit_code == 0


def test_quiet_prints_the_essential_value(gpuctl, fake_cloud, isolated: Path) -> None:
    from tests.fakehost.cloud import add_deployment

    add_deployment(isolated, "first", endpoint="http://127.0.0.1:9")
    add_deployment(isolated, "second")
    add_deployment(isolated, "ended", status="terminated")
    assert gpuctl("status", "-q").stdout == "first\nsecond\n"
    rows = json.loads(gpuctl("status", "--all", "--no-probe", "--json").stdout)
    assert gpuctl("-q", "status", "--all").stdout.splitlines() == [row["name"] for row in rows]
    assert sorted(row["name"] for row in rows) == ["ended", "first", "second"]
    models = json.loads(gpuctl("models", "--json").stdout)
    assert gpuctl("models", "-q").stdout.splitlines() == [row["name"] for row in models]


def test_prices_quiet_is_the_first_json_row(gpuctl) -> None:
    rows = json.loads(gpuctl("prices", "--gpu", "h100", "--json").stdout)
    assert gpuctl("prices", "--gpu", "h100", "-q").stdout == f"{rows[0]['id']}\n"


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_readme_pipeline_works(subprocess_env: dict[str, str], isolated: Path) -> None:
    gpuctl = f"{sys.executable} -m gpuctl"
    script = (f"{gpuctl} prices --gpu h100 --json | jq -r 'map(select(.gpu_count == 1)) | min_by(.price_per_hour) "
              "| \"\\(.provider) \\(.price_per_hour)\"'")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=subprocess_env, timeout=60,
                            cwd=isolated)
    assert result.returncode == 0, result.stderr
    provider, price = result.stdout.split()
    rows = json.loads(subprocess.run([sys.executable, "-m", "gpuctl", "prices", "--gpu", "h100", "--count", "1",
                                      "--json"], capture_output=True, text=True, env=subprocess_env,
                                     timeout=60, cwd=isolated).stdout)
    assert (provider, float(price)) == (rows[0]["provider"], rows[0]["price_per_hour"])
