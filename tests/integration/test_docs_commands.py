"""Every command block of README.md and docs/quickstart.md, run as written (issue 15).

How the docs meet the test machine, which has no cloud account and no GPU:

* gpuctl's real providers are installed, without credentials (their prices come from the snapshot;
  ``up`` leaves them out), next to the fake cloud of tests/fakehost/cloud.py, whose offers launch
  "instances" that are a fake GPU host (sshd + dockerd in a network namespace, fake nvidia-smi, the
  fake engine image): that is the cloud a command like ``gpuctl up qwen2.5-7b --gpu l40s`` rents from.
  The fake host's stand-in hub serves the weights. API base URLs point at a closed port, so nothing
  leaves the machine even where a block sets a key.
* A block runs in ``bash -e`` in a project directory of its document (blocks of one document share it,
  in order: ``up`` before ``status``, ``env``, ``bench``, ``down``).
* A comment right above a block, ``<!-- docs-test: ITEM; ITEM -->``, says what else the test does:
  ``skip REASON`` (alone: the block is not run; the reason is reported), ``yes`` (the confirmations are
  answered as ``-y`` would, through GPUCTL_YES), ``host TARGET...`` (each ``--host TARGET`` is the fake
  GPU host, reached with its key), ``tunnel`` (``gpuctl ssh --tunnel --port 0`` runs meanwhile, as the
  doc says to keep it running in another terminal). Any other item fails the test.

At the end nothing may be left: no instance of the fake cloud, no container on the host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakehost.cloud import REPO, Cloud, make_offer
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

DOCS = [REPO / "README.md", REPO / "docs" / "quickstart.md"]
_MARKER = re.compile(r"^<!-- docs-test: (.*) -->$")
_FENCE = re.compile(r"^```(\w*)$")
#: gpuctl with its real providers plus the fake clouds (in a subprocess, as the user's shell runs it)
_RUNNER = """
import sys
from gpuctl.plugins import ProviderRegistry
from tests.fakehost import cloud
discover = ProviderRegistry.discover
def with_fakes(cls, eps=None):
    registry = discover(eps)
    for name, klass in cloud.CLASSES.items():
        if name not in registry.classes:
            registry._admit(name, klass, (None, None))
    return registry
ProviderRegistry.discover = classmethod(with_fakes)
from gpuctl.__main__ import main
main(sys.argv[1:])
"""
_CLOSED = "http://127.0.0.1:9"


@dataclass
class Block:
    doc: Path
    line: int
    text: str
    skip: str | None = None
    yes: bool = False
    hosts: list[str] = field(default_factory=list)
    tunnel: bool = False

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, each with what its marker says."""
    found: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        block = Block(doc, index + 1, "\n".join(lines[index + 1:end]) + "\n")
        marker = _MARKER.match(lines[index - 1]) if index else None
        spec = marker.group(1) if marker else ""
        items = [spec] if spec.startswith("skip ") else [part.strip() for part in spec.split(";") if part.strip()]
        for item in items:
            word, _, rest = item.partition(" ")
            if word == "skip" and len(rest.strip()) >= 10:
                block.skip = rest.strip()
            elif word == "yes" and not rest:
                block.yes = True
            elif word == "host" and rest:
                block.hosts = rest.split()
            elif word == "tunnel" and not rest:
                block.tunnel = True
            else:
                raise AssertionError(f"{block.where()}: the test does not know '{item}' (a skip needs a reason)")
        found.append(block)
        index = end + 1
    return found


def test_the_docs_have_blocks_and_every_skip_says_why() -> None:
    for doc in DOCS:
        found = blocks(doc)
        assert found, doc
        assert sum(b.skip is None for b in found) >= 3, f"{doc}: most blocks run"


@pytest.fixture
def world(fake_cloud: Cloud, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path,
          tmp_path: Path, subprocess_env: dict[str, str]) -> dict[str, str]:
    """The environment the blocks run in (see the module docstring)."""
    fake_cloud.use_host(fake_gpu_host)
    fake_cloud.add_offer(make_offer("fakecloud", "fc.l40s", 0.49))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER)
    wrapper = bin_dir / "gpuctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {runner} "$@"\n')
    wrapper.chmod(0o755)
    return {**subprocess_env, "PATH": f"{bin_dir}{os.pathsep}{subprocess_env['PATH']}", "PYTHONPATH": str(REPO),
            "GPUCTL_RUNPOD_API_URL": _CLOSED, "GPUCTL_LAMBDA_API_URL": _CLOSED, "AWS_ENDPOINT_URL": _CLOSED}


def _host_flags(host: FakeGpuHost, env: FakeHostEnv) -> str:
    return f"--host {host.target} --identity {env.client_key} --accept-host-key"


def _run(block: Block, project: Path, env: dict[str, str], host_flags: str, logs: Path) -> None:
    text = block.text
    for target in block.hosts:
        text = re.sub(rf"--host {re.escape(target)}(?=\s)", host_flags, text)
    environment = {**env, **({"GPUCTL_YES": "1"} if block.yes else {})}
    tunnel = None
    out, err = logs / f"{block.line}.out", logs / f"{block.line}.err"
    try:
        if block.tunnel:
            tunnel = subprocess.Popen(["gpuctl", "ssh", "--tunnel", "--port", "0"], cwd=project, env=environment,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert tunnel.stdout is not None and tunnel.stdout.readline().startswith("http://127.0.0.1:")
            time.sleep(1.0)  # ssh binds a moment after printing; a curl before that is refused
        # files, not pipes: a block may leave a process running in the background ('gpuctl ssh --tunnel &')
        with out.open("w") as stdout, err.open("w") as stderr:
            done = subprocess.run(["bash", "-e", "-c", text], cwd=project, env=environment, stdout=stdout,
                                  stderr=stderr, timeout=600)
    finally:
        if tunnel is not None:
            tunnel.terminate()
            tunnel.wait(timeout=10)
    assert done.returncode == 0, (f"{block.where()} failed (exit {done.returncode}):\n{text}\n--- stdout\n"
                                  f"{out.read_text()[-3000:]}\n--- stderr\n{err.read_text()[-3000:]}")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_block_runs_as_written(doc: Path, world: dict[str, str], fake_cloud: Cloud,
                                     fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path,
                                     tmp_path: Path) -> None:
    project = isolated / doc.stem.lower()
    project.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    skipped = []
    try:
        for block in blocks(doc):
            if block.skip:
                skipped.append(f"{block.where()}: {block.skip}")
                continue
            _run(block, project, world, _host_flags(fake_gpu_host, fakehost_env), logs)
    finally:
        subprocess.run(["gpuctl", "down", "--all", "-y"], cwd=project, env=world, capture_output=True, timeout=600)
        print("blocks not run, as the doc marks them:\n  " + "\n  ".join(skipped))
    assert fake_cloud.live() == [], "an instance is left billing"
    assert fake_gpu_host.containers() == [], "an engine is left running"
