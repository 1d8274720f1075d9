"""``gpuctl bench --from host``: the load generator run inside the engine container on the GPU host.

From there it reaches the engine on localhost, so the network between the user and the cloud stays
out of the figures, and it runs on the engine image's own Python (which has aiohttp: vLLM needs it).
The module's source and its settings, the API key included, travel on stdin: nothing is written on
the host and no secret appears in a command line.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from gpuctl.bench.runner import LOADGEN_PATH, loadgen_error, parse_report
from gpuctl.models.engine import CONTAINER_NAME

if TYPE_CHECKING:
    from gpuctl.bench.loadgen import LoadSpec
    from gpuctl.host.docker import DockerEngine
    from gpuctl.models.bench import LoadgenReport

HOST_RUN_TIMEOUT_S = 6 * 3600.0

# Reads the settings (first line of stdin) and the module (the rest), then runs the module as a script.
BOOTSTRAP = (
    "import io,sys\n"
    "settings=sys.stdin.readline()\n"
    "source=sys.stdin.read()\n"
    "sys.stdin=io.StringIO(settings)\n"
    "sys.argv=['gpuctl-loadgen','--config','-','--json','--quiet']\n"
    "exec(compile(source,'gpuctl-loadgen.py','exec'),{'__name__':'__main__'})\n"
)


def aimed_at_engine(spec: LoadSpec, engine_port: int) -> LoadSpec:
    """The same load, aimed at the engine from inside its own container."""
    return dataclasses.replace(spec, url=f"http://127.0.0.1:{engine_port}", progress=False)


def run_in_engine(docker: DockerEngine, spec: LoadSpec, *, container: str = CONTAINER_NAME,
                  timeout_s: float = HOST_RUN_TIMEOUT_S) -> LoadgenReport:
    """Run ``spec`` with the engine container's python3 and return its report."""
    payload = json.dumps(dataclasses.asdict(spec)).encode() + b"\n" + LOADGEN_PATH.read_bytes()
    result = docker.docker("exec", "-i", container, "python3", "-c", BOOTSTRAP, input=payload, timeout=timeout_s)
    if not result.ok:
        raise loadgen_error(result.exit_code, result.stderr.splitlines()[-5:], spec.url)
    return parse_report(result.stdout)
