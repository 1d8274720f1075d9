"""Step 6 of ``gpuctl up``: is this host fit to serve? GPUs as offered, docker, the NVIDIA runtime.

A rented machine missing docker or the NVIDIA runtime registration is bootstrapped once with
``templates/bootstrap.sh`` (installs docker.io through apt, registers the toolkit's runtime). A
machine the user owns (``--host``) is never bootstrapped: gpuctl does not install anything there,
restart its docker or change its configuration, and says instead what is missing and how to add it.
A host without a working NVIDIA driver, or with other GPUs than the offer, is refused.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel, Field

from gpuctl.events import NullReporter, Reporter
from gpuctl.host.docker import DockerInfo, docker_access
from gpuctl.host.errors import HostCheckError
from gpuctl.host.nvidia import QUERY_ARGV, GpuInfo, canonical_gpu, failure, parse_query_output
from gpuctl.host.shell import CommandResult, Shell
from gpuctl.models.engine import HOST_CACHE_DIR, HOST_ENV_FILE

BOOTSTRAP_TEMPLATE = "bootstrap.sh"
BOOTSTRAP_TIMEOUT_S = 900.0
NVIDIA_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-runtime")
_RENTED_HINT = "install docker and the NVIDIA Container Toolkit there (or use a GPU image)"
#: what to do about each problem on a machine the user owns (gpuctl changes nothing there)
_OWNED_HINTS = {
    "missing": "install docker there (e.g. 'sudo apt-get install docker.io'), then run 'gpuctl up' again",
    "down": "start it ('sudo systemctl start docker'), then run 'gpuctl up' again",
    "runtime": "install the NVIDIA Container Toolkit there, register it ('sudo nvidia-ctk runtime configure "
               "--runtime=docker') and restart docker, then run 'gpuctl up' again",
}


class HostReport(BaseModel):
    """What the check found; kept with the deployment and shown by ``gpuctl up --json``."""

    gpus: list[GpuInfo]
    gpu: str | None = Field(description="canonical catalog name of the GPUs, None when unknown")
    gpu_count: int
    docker: DockerInfo
    docker_sudo: bool = Field(description="whether docker needs 'sudo -n' for the login user")
    nvidia_runtime: str = Field(description="how --gpus is served: the 'nvidia' runtime or the toolkit hook")
    bootstrapped: bool = False


def query_gpus(shell: Shell) -> list[GpuInfo]:
    """The host's GPUs; HostCheckError when nvidia-smi is missing, fails or lists none."""
    result = shell.run(QUERY_ARGV, timeout=60)
    if not result.ok:
        raise failure(result.exit_code, result.stderr or result.stdout, shell.where)
    gpus = parse_query_output(result.stdout)
    if not gpus:
        raise HostCheckError(f"nvidia-smi on {shell.where} lists no GPU")
    return gpus


def verify_gpus(gpus: list[GpuInfo], expected_gpu: str, expected_count: int, where: str) -> str | None:
    """Compare with the offer (canonical names, see gpuctl.catalog); returns the canonical name found."""
    from gpuctl.catalog import gpu_names, resolve_gpu

    allowed = gpu_names(expected_gpu)  # one SKU; a record written before SKUs were split may name a family
    found = {canonical_gpu(g.name, g.memory_total_mib) or g.name for g in gpus}
    listing = ", ".join(f"{g.name} ({g.memory_total_mib if g.memory_total_mib is not None else '?'} MiB)"
                        for g in gpus)
    if len(found) != 1 or not found <= set(allowed):
        promised = resolve_gpu(expected_gpu)
        raise HostCheckError(f"{where} has {listing}, but the offer promised {expected_count}x {promised}",
                             "the provider handed out another GPU; terminate it and pick another offer")
    [gpu] = found
    if len(gpus) != expected_count:
        raise HostCheckError(f"{where} has {len(gpus)}x {gpu}, but the offer promised {expected_count}",
                             "terminate it and pick another offer")
    return gpu


def check_host(
    shell: Shell,
    *,
    expected_gpu: str,
    expected_count: int,
    bootstrap: bool = True,
    user_owned: bool = False,
    reporter: Reporter | None = None,
) -> HostReport:
    """Run every check; bootstrap (at most once, never on a ``user_owned`` machine) when docker or its
    NVIDIA runtime is missing. HostCheckError (exit 4) names what is missing and how to add it."""
    reporter = reporter or NullReporter()
    gpus = query_gpus(shell)
    canonical = verify_gpus(gpus, expected_gpu, expected_count, shell.where)
    bootstrapped = False
    while True:
        problem, kind, sudo, info, runtime = _docker_state(shell)
        if problem is None:
            break
        if user_owned:
            raise HostCheckError(f"{problem} on {shell.where}; gpuctl does not change a machine you own",
                                 _OWNED_HINTS[kind])
        if not bootstrap or bootstrapped:
            raise HostCheckError(f"{problem} on {shell.where}", _RENTED_HINT)
        reporter.info(f"{problem} on {shell.where}: bootstrapping it")
        bootstrap_host(shell, reporter)
        bootstrapped = True
    assert info is not None and runtime is not None
    return HostReport(gpus=gpus, gpu=canonical, gpu_count=len(gpus), docker=info, docker_sudo=sudo,
                      nvidia_runtime=runtime, bootstrapped=bootstrapped)


def _docker_state(shell: Shell) -> tuple[str | None, str, bool, DockerInfo | None, str | None]:
    """(problem or None, its kind, needs sudo, docker info, how the NVIDIA runtime is provided)."""
    from gpuctl.host.dockerapi import DockerUnavailable

    try:
        engine = docker_access(shell)
        info = engine.info()
    except DockerUnavailable as exc:
        if exc.reason == "missing":
            return "docker is not installed", "missing", False, None, None
        return "the docker daemon does not answer", "down", False, None, None
    engine.close()
    if "nvidia" in info.runtimes:
        return None, "", engine.sudo, info, "nvidia runtime"
    hooks = shell.run(["sh", "-c", 'command -v "$@"', "sh", *NVIDIA_HOOKS])
    if hooks.ok and hooks.stdout.strip():
        return None, "", engine.sudo, info, PurePosixPath(hooks.stdout.split()[0]).name
    return "the NVIDIA container runtime is missing", "runtime", engine.sudo, info, None


def bootstrap_host(shell: Shell, reporter: Reporter | None = None) -> list[str]:
    """Run templates/bootstrap.sh as root on the host; returns the steps it changed."""
    from gpuctl.templating import render

    reporter = reporter or NullReporter()
    script = render(BOOTSTRAP_TEMPLATE, {"CACHE_DIR": HOST_CACHE_DIR,
                                         "CONFIG_DIR": str(PurePosixPath(HOST_ENV_FILE).parent)})
    as_root = shell.run(["id", "-u"]).stdout.strip() == "0"
    argv = ["bash", "-s"] if as_root else ["sudo", "-n", "bash", "-s"]
    with reporter.step(f"bootstrapping {shell.where}"):
        result = shell.run(argv, input=script.encode("utf-8"), timeout=BOOTSTRAP_TIMEOUT_S)
    changed, failed = _bootstrap_steps(result)
    for step in changed:
        reporter.info(f"{shell.where}: {step}")
    if failed or not result.ok:
        detail = "; ".join(failed) or result.last_error_line()
        raise HostCheckError(f"bootstrapping {shell.where} failed: {detail}", _RENTED_HINT)
    return changed


def _bootstrap_steps(result: CommandResult) -> tuple[list[str], list[str]]:
    changed, failed = [], []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "gpuctl-bootstrap":
            _, step, status, detail = parts
            if status == "done":
                changed.append(f"{step}: {detail}")
            elif status == "failed":
                failed.append(f"{step}: {detail}")
    return changed, failed
