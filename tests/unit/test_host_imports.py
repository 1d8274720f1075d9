"""docker (and what it pulls in) is imported only by the code that talks to a docker engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: docker-py and its transport; none may be loaded by the commands below
DOCKER_MODULES = ("docker", "requests", "urllib3", "gpuctl.host.dockerapi", "gpuctl.host.docker")


@pytest.mark.parametrize("args", [["--help"], ["prices", "--json"], ["up", "--help"], ["gc", "--help"]])
def test_commands_that_drive_no_container_never_import_docker(args: list[str], subprocess_env: dict[str, str]) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from gpuctl.cli import cli\n"
        f"result = CliRunner().invoke(cli, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(sorted(m for m in {DOCKER_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
