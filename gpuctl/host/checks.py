"""Step 6 of ``gpuctl up``: is this host fit to serve? GPUs as offered, docker, the NVIDIA runtime.

A host missing docker or the NVIDIA runtime registration is bootstrapped once with
``templates/bootstrap.sh`` (installs docker.io through apt, registers the toolkit's runtime); a host
without a working NVIDIA driver, or with other GPUs than the offer, is refused.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel, Field

from gpuctl.events import NullReporter, Reporter
from gpuctl.host.docker import DockerEngine, DockerInfo
from gpuctl.host.errors import HostCheckError, HostError
from gpuctl.host.nvidia import QUERY_ARGV, GpuInfo, canonical_gpu, failure, parse_query_output
from gpuctl.host.shell import CommandResult, Shell
from gpuctl.models.engine import HOST_CACHE_DIR, HOST_ENV_FILE

BOOTSTRAP_TEMPLATE = "bootstrap.sh"
BOOTSTRAP_TIMEOUT_S = 900.0
NVIDIA_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-runtime")


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
    reporter: Reporter | None = None,
) -> HostReport:
    """Run every check; bootstrap (at most once) when docker or its NVIDIA runtime is missing."""
    reporter = reporter or NullReporter()
    gpus = query_gpus(shell)
    canonical = verify_gpus(gpus, expected_gpu, expected_count, shell.where)
    bootstrapped = False
    while True:
        problem, sudo, info, runtime = _docker_state(shell)
        if problem is None:
            break
        if not bootstrap or bootstrapped:
            raise HostCheckError(f"{problem} on {shell.where}",
                                 "install docker and the NVIDIA Container Toolkit there (or use a GPU image)")
        reporter.info(f"{problem} on {shell.where}: bootstrapping it")
        bootstrap_host(shell, reporter)
        bootstrapped = True
    assert info is not None and runtime is not None
    return HostReport(gpus=gpus, gpu=canonical, gpu_count=len(gpus), docker=info, docker_sudo=sudo,
                      nvidia_runtime=runtime, bootstrapped=bootstrapped)


def _docker_state(shell: Shell) -> tuple[str | None, bool, DockerInfo | None, str | None]:
    """(problem or None, needs sudo, docker info, how the NVIDIA runtime is provided)."""
    sudo = False
    try:
        info = DockerEngine(shell).info()
    except HostError as exc:
        text = exc.message.lower()
        if "not found" in text or "exit 127" in text:
            return "docker is not installed", False, None, None
        if "permission denied" not in text:
            return "the docker daemon does not answer", False, None, None
        try:
            info = DockerEngine(shell, sudo=True).info()
        except HostError:
            raise HostCheckError(f"{shell.where}: the login user may not use docker, and 'sudo -n' is refused",
                                 "add the user to the docker group on the host") from exc
        sudo = True
    if "nvidia" in info.runtimes:
        return None, sudo, info, "nvidia runtime"
    hooks = shell.run(["sh", "-c", 'command -v "$@"', "sh", *NVIDIA_HOOKS])
    if hooks.ok and hooks.stdout.strip():
        return None, sudo, info, PurePosixPath(hooks.stdout.split()[0]).name
    return "the NVIDIA container runtime is missing", sudo, info, None


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
        raise HostCheckError(f"bootstrapping {shell.where} failed: {detail}",
                             "install docker and the NVIDIA Container Toolkit there (or use a GPU image)")
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
