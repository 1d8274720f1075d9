"""Step 6 host checks against a scripted shell: GPUs, docker, NVIDIA runtime, bootstrap call site."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gpuctl.errors import ExitCode, UsageError
from gpuctl.host.checks import bootstrap_host, check_host
from gpuctl.host.errors import HostCheckError
from gpuctl.host.shell import CommandResult
from gpuctl.models.engine import HOST_CACHE_DIR
from tests.fakehost.dockerapi import FakeDockerApi
from tests.fakehost.shells import ScriptedShell

SMI = ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.used,utilization.gpu",
       "--format=csv,noheader,nounits"]
TWO_L40S = "0, NVIDIA L40S, 46068, 0, 0\n1, NVIDIA L40S, 46068, 12, 0\n"
HOOK = ["sh", "-c", 'command -v "$@"']
NOT_INSTALLED = "exit 127: bash: docker: command not found"


def _docker(**kwargs: object) -> FakeDockerApi:
    return FakeDockerApi(runtimes=("runc", "io.containerd.runc.v2"), **kwargs)  # type: ignore[arg-type]


def _healthy_host() -> ScriptedShell:
    return (ScriptedShell().on(*SMI, stdout=TWO_L40S).with_docker(_docker())
            .on(*HOOK, stdout="/usr/bin/nvidia-container-runtime-hook\n"))


def test_healthy_host_report() -> None:
    report = check_host(_healthy_host(), expected_gpu="l40s", expected_count=2)
    assert (report.gpu, report.gpu_count, report.docker.server_version) == ("L40S", 2, "27.3.1")
    assert report.gpus[1].memory_used_mib == 12
    assert (report.nvidia_runtime, report.docker_sudo, report.bootstrapped) == (
        "nvidia-container-runtime-hook", False, False)


def test_registered_nvidia_runtime_is_enough() -> None:
    shell = _healthy_host().with_docker(FakeDockerApi(runtimes=("runc", "nvidia"))).on(*HOOK, exit_code=1)
    assert check_host(shell, expected_gpu="L40S", expected_count=2).nvidia_runtime == "nvidia runtime"


def test_other_gpu_than_offered_is_refused() -> None:
    shell = _healthy_host().on(*SMI, stdout="0, NVIDIA A10G, 23028, 0, 0\n")
    with pytest.raises(HostCheckError) as caught:
        check_host(shell, expected_gpu="L40S", expected_count=1)
    assert caught.value.message == (
        "test@host:22 has NVIDIA A10G (23028 MiB), but the offer promised 1x L40S")
    assert caught.value.exit_code == ExitCode.PROVIDER
    assert shell.dialed == [], "docker is not asked about a host with the wrong GPUs"


def test_fewer_gpus_than_offered_is_refused() -> None:
    with pytest.raises(HostCheckError, match="has 2x L40S, but the offer promised 4"):
        check_host(_healthy_host(), expected_gpu="L40S", expected_count=4)


def test_unknown_expected_gpu_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        check_host(_healthy_host(), expected_gpu="not-a-gpu", expected_count=1)


def test_driver_not_loaded() -> None:
    shell = _healthy_host().on(*SMI, exit_code=9, stdout="NVIDIA-SMI has failed because it couldn't communicate "
                                                        "with the NVIDIA driver.\n")
    with pytest.raises(HostCheckError, match=r"exit 9 \(the NVIDIA driver is not loaded\)"):
        check_host(shell, expected_gpu="L40S", expected_count=2)


def test_docker_behind_sudo() -> None:
    denied = _docker(failure="exit 1: permission denied while trying to connect to the Docker daemon socket")
    shell = _healthy_host().with_docker(denied).with_docker(_docker(), sudo=True)
    assert check_host(shell, expected_gpu="L40S", expected_count=2).docker_sudo is True
    assert shell.dialed[-1] == ["sudo", "-n", "docker", "system", "dial-stdio"]


def test_docker_refused_to_the_user_and_to_sudo() -> None:
    denied = _docker(failure="exit 1: permission denied while trying to connect to the Docker daemon socket")
    shell = _healthy_host().with_docker(denied).with_docker(_docker(failure="exit 1: sudo: a password is required"),
                                                            sudo=True)
    with pytest.raises(HostCheckError) as caught:
        check_host(shell, expected_gpu="L40S", expected_count=2)
    assert caught.value.one_line() == ("test@host:22: the login user may not use docker, and 'sudo -n' is refused "
                                       "(hint: add the user to the docker group on the host)")


class BootstrappingShell(ScriptedShell):
    """A host without docker until bootstrap.sh runs."""

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        result = super().run(argv, input=input, timeout=timeout)
        if list(argv[-2:]) == ["bash", "-s"]:
            self.with_docker(_docker())
        return result


def test_missing_docker_is_bootstrapped_once_as_root_through_stdin() -> None:
    shell = BootstrappingShell().with_docker(_docker(failure=NOT_INSTALLED))
    shell.on(*SMI, stdout=TWO_L40S).on(*HOOK, stdout="/usr/bin/nvidia-container-runtime-hook\n")
    shell.on("id", "-u", stdout="1000\n")
    shell.on("sudo", "-n", "bash", "-s", stdout="gpuctl-bootstrap\tcache-dir\tok\t/var/lib/gpuctl/hf-cache\n"
             "gpuctl-bootstrap\tdocker-cli\tdone\tinstalled docker.io\n")
    report = check_host(shell, expected_gpu="L40S", expected_count=2)
    assert report.bootstrapped is True
    (bootstrap,) = [call for call in shell.calls if call.argv == ["sudo", "-n", "bash", "-s"]]
    script = (bootstrap.input or b"").decode()
    assert script.startswith("#!/usr/bin/env bash")
    assert f"cache_dir={HOST_CACHE_DIR}\n" in script
    assert "config_dir=/etc/gpuctl\n" in script
    assert "@@" not in script


def test_bootstrap_disabled_reports_what_is_missing() -> None:
    shell = _healthy_host().with_docker(_docker(failure=NOT_INSTALLED))
    with pytest.raises(HostCheckError) as caught:
        check_host(shell, expected_gpu="L40S", expected_count=2, bootstrap=False)
    assert caught.value.message == "docker is not installed on test@host:22"
    assert "NVIDIA Container Toolkit" in caught.value.hint


@pytest.mark.parametrize(("docker", "hook", "line"), [
    (_docker(failure=NOT_INSTALLED), True,
     "docker is not installed on test@host:22; gpuctl does not change a machine you own (hint: install docker "
     "there (e.g. 'sudo apt-get install docker.io'), then run 'gpuctl up' again)"),
    (_docker(failure="exit 1: Cannot connect to the Docker daemon at unix:///var/run/docker.sock"), True,
     "the docker daemon does not answer on test@host:22; gpuctl does not change a machine you own (hint: start it "
     "('sudo systemctl start docker'), then run 'gpuctl up' again)"),
    (_docker(), False,
     "the NVIDIA container runtime is missing on test@host:22; gpuctl does not change a machine you own (hint: "
     "install the NVIDIA Container Toolkit there, register it ('sudo nvidia-ctk runtime configure "
     "--runtime=docker') and restart docker, then run 'gpuctl up' again)"),
])
def test_a_machine_the_user_owns_is_never_bootstrapped(docker: FakeDockerApi, hook: bool, line: str) -> None:
    shell = _healthy_host().with_docker(docker).on("id", "-u", stdout="0\n").on("bash", "-s", stdout="")
    if not hook:
        shell.on(*HOOK, exit_code=1)
    with pytest.raises(HostCheckError) as caught:
        check_host(shell, expected_gpu="L40S", expected_count=2, user_owned=True)
    assert caught.value.one_line() == line
    assert caught.value.exit_code == ExitCode.PROVIDER
    assert ["bash", "-s"] not in shell.argvs() and ["sudo", "-n", "bash", "-s"] not in shell.argvs()


def test_runtime_still_missing_after_bootstrap_is_an_error() -> None:
    shell = (_healthy_host().on(*HOOK, exit_code=1).on("id", "-u", stdout="0\n")
             .on("bash", "-s", stdout="gpuctl-bootstrap\tnvidia-runtime\tok\tavailable to docker\n"))
    with pytest.raises(HostCheckError, match="the NVIDIA container runtime is missing on test@host:22"):
        check_host(shell, expected_gpu="L40S", expected_count=2)
    assert sum(argv == ["bash", "-s"] for argv in shell.argvs()) == 1


def test_failed_bootstrap_step_is_reported() -> None:
    shell = (ScriptedShell().on("id", "-u", stdout="0\n")
             .on("bash", "-s", exit_code=1, stdout="gpuctl-bootstrap\tdocker-cli\tfailed\tdocker is not installed "
                 "and apt-get could not install it\n"))
    with pytest.raises(HostCheckError) as caught:
        bootstrap_host(shell)
    assert caught.value.message == ("bootstrapping test@host:22 failed: docker-cli: docker is not installed and "
                                    "apt-get could not install it")
