"""``--from host`` mechanics: the load generator sent on stdin into ``docker exec`` of the engine container.

A fake ``docker`` on PATH stands in for the engine container: it drops ``exec -i NAME python3`` and runs
the rest with this interpreter, so the bootstrap, the stdin protocol and the report parsing are real.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.bench.loadgen import LoadSpec
from gpuctl.bench.remote import aimed_at_engine, run_in_engine
from gpuctl.errors import HealthCheckError
from gpuctl.host.docker import DockerEngine
from gpuctl.host.shell import LocalShell
from tests.standins.mock_openai import MockProcess

pytestmark = pytest.mark.integration


class RecordingShell(LocalShell):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.argvs: list[list[str]] = []

    def run(self, argv, *, input=None, timeout=60.0):  # type: ignore[no-untyped-def]
        self.argvs.append(list(argv))
        return super().run(argv, input=input, timeout=timeout)


@pytest.fixture
def docker(tmp_path: Path) -> RecordingShell:
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n"
                    '[ "$1" = exec ] && [ "$4" = python3 ] || exit 99\n'
                    f'shift 4\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    return RecordingShell({"PATH": f"{fake.parent}:/usr/bin:/bin"})


@pytest.fixture
def mock() -> Iterator[MockProcess]:
    with MockProcess("--api-key", "sk-standin-host-77", "--ttft-ms", "5") as server:
        yield server


def test_the_load_generator_runs_in_the_engine_container(docker: RecordingShell, mock: MockProcess) -> None:
    port = int(mock.url.rsplit(":", 1)[1])
    spec = LoadSpec(url="http://203.0.113.9:8000", api_key="sk-standin-host-77", requests=5, input_len=4,
                    output_len=4)
    local = aimed_at_engine(spec, port)
    assert (local.url, local.progress) == (f"http://127.0.0.1:{port}", False)
    report = run_in_engine(DockerEngine(docker), local, container="gpuctl-engine")
    assert report.runs[0].requests_ok == 5 and report.model == "mock-model"
    assert docker.argvs[0][:5] == ["docker", "exec", "-i", "gpuctl-engine", "python3"]
    assert not any("sk-standin" in part for part in docker.argvs[0])


def test_a_failure_there_is_reported_here(docker: RecordingShell) -> None:
    spec = aimed_at_engine(LoadSpec(url="http://x:1", requests=1), 1)
    with pytest.raises(HealthCheckError, match=r"cannot reach http://127\.0\.0\.1:1/v1/models"):
        run_in_engine(DockerEngine(docker), spec)
