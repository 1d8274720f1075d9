#!/usr/bin/env python3
"""A fault campaign against ``gpuctl up`` / ``down``: does anything keep billing after the user recovers?

For each provider kind (``host``: ``--host`` on a fake GPU host; ``runpod``: the RunPod stand-in whose pods
serve a mock engine; ``lambda``: the Lambda stand-in whose machine is a fake GPU host; ``aws``: EC2, SSM and
S3 under moto's server, the machine a fake GPU host) it runs many trials, one fresh project each:

* signals: SIGKILL, SIGINT and SIGTERM delivered to ``up`` at each point it passes (the events of its
  record: reserved, launching, launched, weights-cache, host-checked, weights-cached, engine-started,
  ttl-armed), while the provider's create is in flight, while the weights are being fetched, and while
  the engine loads;
* races: ``down NAME`` and ``down --all`` run while ``up`` is at those points;
* API faults: a create answered 500, status polls answered garbled or 502, a terminate answered 503
  during ``down``, a listing answered 503 during ``gc``;
* host faults: the engine crashing at start, an engine that never answers (``--health-timeout``), a
  machine whose SSH never comes up;
* local faults: the project directory turning read-only or full at a point, the state file corrupted.

Each trial ends as a user would end it: the project directory made writable again, ``gpuctl down NAME``
(``down NAME --host`` for a ``--host`` deployment whose state file is corrupt; a corrupt state file of a
cloud deployment moved aside), then ``gpuctl gc -y``. It then counts what is left: pods and instances
not terminated at the provider, open S3 multipart uploads, and on a ``--host`` machine engine containers
and TTL watchdogs. Prints one table (kind, fault class, trials, left right after the fault, left after
recovery) and the trials that left anything.

Needs root and the fake GPU host packages (tests/fakehost/install-packages.sh)::

    sudo python3 benchmarks/fault_campaign.py                      # every kind, about 15 minutes on 2 cores
    sudo python3 benchmarks/fault_campaign.py --kinds runpod,host  # some kinds
    sudo python3 benchmarks/fault_campaign.py --signals SIGKILL --json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakehost.cloud import write_recipe  # noqa: E402
from tests.fakehost.host import FakeGpu, FakeGpuHost, FakeHostEnv, missing_prerequisites, prepare_env  # noqa: E402
from tests.standins.fixtures import LAMBDA_TEST_KEY, RUNPOD_TEST_KEY  # noqa: E402
from tests.standins.hub_server import tiny_model  # noqa: E402
from tests.standins.lambda_server import LambdaStandin  # noqa: E402
from tests.standins.mock_openai import MockProcess  # noqa: E402
from tests.standins.runpod_server import RunPodStandin  # noqa: E402
from tests.standins.server import Fault, StandinServer  # noqa: E402

REPO = "meta-llama/Meta-Llama-3-8B-Instruct"
COMMIT = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"  # what recipes/llama-3-8b.yaml pins
HOST_CACHE = "/var/lib/gpuctl/hf-cache"
DEAF = "http://127.0.0.1:9"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
UP_TIMEOUT_S = 240.0
#: where each kind's 'up' passes (its record's events), in order
POINTS = {
    "host": ["reserved", "host-checked", "fetching", "weights-cached", "engine-started", "ttl-armed", "health"],
    "runpod": ["reserved", "launching", "in-flight", "launched", "engine-started", "health"],
    "lambda": ["reserved", "in-flight", "launched", "host-checked", "fetching", "weights-cached", "engine-started",
               "ttl-armed", "health"],
    "aws": ["reserved", "weights-cache", "in-flight", "launched", "host-checked", "fetching", "weights-cached",
            "engine-started", "ttl-armed"],
}
RACE_POINTS = {"host": ["fetching", "health"], "runpod": ["in-flight", "health"],
               "lambda": ["in-flight", "fetching"], "aws": ["in-flight", "fetching"]}
LOCAL_POINTS = {"host": ["host-checked", "engine-started"], "runpod": ["in-flight", "engine-started"],
                "lambda": ["launched", "engine-started"], "aws": ["launched", "engine-started"]}


# -- one trial's project ----------------------------------------------------------------------------------
@dataclass
class Project:
    root: Path
    env: dict[str, str]

    @property
    def path(self) -> Path:
        return self.root / "project"

    @property
    def state_dir(self) -> Path:
        return self.path / ".gpuctl"

    def gpuctl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tests.integration.fault_runner", *args], cwd=self.path,
                                env={**self.env, **(env or {})}, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_default_sigint)

    def run(self, *args: str, timeout: float = UP_TIMEOUT_S, env: dict[str, str] | None = None) -> tuple[int, str]:
        process = self.gpuctl(*args, env=env)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            return -9, stderr
        return process.returncode, stderr

    def events(self, name: str) -> list[str]:
        try:
            history = json.loads((self.state_dir / "state.json").read_text())["history"]
        except (OSError, ValueError, KeyError):
            return []
        return [e["event"] for e in history if e.get("deployment") == name]


def _default_sigint() -> None:
    """Ctrl-C as a terminal would deliver it, even when this driver runs in the background (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def new_project(base: Path, env: dict[str, str]) -> Project:
    root = Path(tempfile.mkdtemp(prefix="trial-", dir=base))
    for sub in ("home", "project", "config", "cache"):
        (root / sub).mkdir()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("AWS_", "RUNPOD_", "LAMBDA_", "GPUCTL_", "HF_"))}
    environment.update(HOME=str(root / "home"), GPUCTL_CONFIG_DIR=str(root / "config"),
                       GPUCTL_CACHE_DIR=str(root / "cache"), NO_COLOR="1", COLUMNS="200", PYTHONPATH=str(ROOT),
                       AWS_CONFIG_FILE=str(root / "home" / "aws-config"),
                       AWS_SHARED_CREDENTIALS_FILE=str(root / "home" / "aws-credentials"),
                       AWS_EC2_METADATA_DISABLED="true", **env)
    project = Project(root, environment)
    write_recipe(project.path)
    write_recipe(project.path, "deaf", env={"FAKE_ENGINE_MOCK_ARGS": "--port 9999"})
    write_recipe(project.path, "crash", env={"FAKE_ENGINE_EXIT": "1 torch.OutOfMemoryError: CUDA out of memory"})
    return project


# -- the kinds ---------------------------------------------------------------------------------------------
class World:
    """One provider kind: how 'up' is called there, what counts as billing, and how faults are injected."""

    kind: str
    host: FakeGpuHost | None = None
    api: StandinServer | None = None
    model = "tiny"

    def env(self) -> dict[str, str]:
        return {}

    def up_args(self, name: str, model: str) -> list[str]:
        raise NotImplementedError

    def prepare(self, project: Project) -> None:
        """Before a trial: the caches emptied (so every trial fetches), the machine accepting the project key."""
        if self.host is not None:
            self.host.run_inside(["rm", "-rf", HOST_CACHE])

    def billing(self) -> list[str]:
        raise NotImplementedError

    def on_host(self) -> list[str]:
        """gpuctl's engine containers and watchdogs on the fake host."""
        if self.host is None:
            return []
        containers = [line for line in self.host.containers() if line.startswith("gpuctl-")]
        watchdogs = [f"watchdog pid {pid}" for pid, cmd in self.host.processes() if "watchdog-" in cmd]
        return containers + watchdogs

    def wipe_host(self) -> None:
        """What a terminated machine takes with it (its containers, its processes); test-side cleanup."""
        if self.host is None:
            return
        ids = self.host.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.host.docker("rm", "--force", *ids, check=False)
        for pid, cmd in self.host.processes():
            if "watchdog-" in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def slow_create(self, seconds: float) -> bool:
        return False

    def deaf(self) -> dict[str, str]:
        """Changes for an engine that never answers (model, env)."""
        return {"model": "deaf"}

    def api_fault(self, name: str) -> bool:
        """Arm API fault ``name``; False where this kind has no such API."""
        return False


class HostWorld(World):
    kind = "host"

    def __init__(self, host: FakeGpuHost, env: FakeHostEnv) -> None:
        self.host, self.fh_env = host, env

    def env(self) -> dict[str, str]:
        assert self.host is not None and self.host.hub is not None
        return {"HF_ENDPOINT": self.host.hub.url}

    def up_args(self, name: str, model: str) -> list[str]:
        assert self.host is not None
        return ["up", model, "--host", self.host.target, "--identity", str(self.fh_env.client_key),
                "--accept-host-key", "--name", name, "-y", "--ttl", "1h"]

    def billing(self) -> list[str]:
        return self.on_host()


class RunPodWorld(World):
    kind = "runpod"

    def __init__(self) -> None:
        self.api = RunPodStandin(api_key=RUNPOD_TEST_KEY).start()
        self.api.state.boot_polls = 1
        self.engine = MockProcess("--model", REPO).start()

    def env(self) -> dict[str, str]:
        assert self.api is not None
        return {"GPUCTL_RUNPOD_API_URL": self.api.url, "RUNPOD_API_KEY": RUNPOD_TEST_KEY,
                "GPUCTL_RUNPOD_PROXY_URL": self.engine.url, "HF_ENDPOINT": DEAF}

    def up_args(self, name: str, model: str) -> list[str]:
        return ["up", model, "--provider", "runpod", "--gpu", "L40S", "--name", name, "-y"]

    def deaf(self) -> dict[str, str]:
        return {"GPUCTL_RUNPOD_PROXY_URL": DEAF}

    def billing(self) -> list[str]:
        assert isinstance(self.api, RunPodStandin)
        return [f"pod {pod}" for pod in self.api.state.pods]

    def slow_create(self, seconds: float) -> bool:
        assert self.api is not None
        self.api.faults.next(Fault.delay(seconds, path="/v2/pods", method="POST"))
        return True

    def api_fault(self, name: str) -> bool:
        assert self.api is not None
        faults = {"create-500": [Fault.error(500, path="/v2/pods", method="POST")],
                  "poll-garbled": [Fault.malformed(path="/v2/pods/")] * 2,
                  "poll-502": [Fault.error(502, path="/v2/pods/")] * 4,
                  "terminate-503": [Fault.error(503, path="/v2/pods/", method="DELETE")] * 4,
                  "list-503": [Fault.error(503, path="/v2/pods", method="GET")] * 4}
        self.api.faults.next(*faults[name])
        return True

    def stop(self) -> None:
        self.engine.stop()
        assert self.api is not None
        self.api.stop()


class LambdaWorld(World):
    kind = "lambda"
    launch = "/api/v1/instance-operations/launch"

    def __init__(self, host: FakeGpuHost, base: Path) -> None:
        self.host = host
        self.api = LambdaStandin(api_key=LAMBDA_TEST_KEY).start()
        state = self.api.state
        state.address, state.boot_polls, state.ip_polls = host.address, 1, 1
        state.authorized_keys = str(host.home / ".ssh" / "authorized_keys")
        state.machine, state.filesystem_dir = host, base / "lambda-filesystems"

    def env(self) -> dict[str, str]:
        assert self.api is not None and self.host is not None and self.host.hub is not None
        return {"GPUCTL_LAMBDA_API_URL": self.api.url, "LAMBDA_API_KEY": LAMBDA_TEST_KEY,
                "HF_ENDPOINT": self.host.hub.url}

    def up_args(self, name: str, model: str) -> list[str]:
        return ["up", model, "--provider", "lambda", "--gpu", "H100-80GB", "--name", name, "-y", "--ttl", "1h",
                "--ssh-timeout", "20s"]

    def prepare(self, project: Project) -> None:
        super().prepare(project)
        assert isinstance(self.api, LambdaStandin) and self.api.state.filesystem_dir is not None
        for filesystem in self.api.state.filesystem_dir.glob("*"):  # the region's cache, empty again
            for item in filesystem.iterdir():
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()

    def billing(self) -> list[str]:
        assert isinstance(self.api, LambdaStandin)
        return [f"instance {i.id}" for i in self.api.state.instances.values()
                if i.status not in ("terminating", "terminated")]

    def slow_create(self, seconds: float) -> bool:
        assert self.api is not None
        self.api.faults.next(Fault.delay(seconds, path=self.launch, method="POST"))
        return True

    def api_fault(self, name: str) -> bool:
        assert self.api is not None
        faults = {"create-500": [Fault.error(500, path=self.launch, method="POST")],
                  "poll-garbled": [Fault.malformed(path="/api/v1/instances/")] * 2,
                  "poll-502": [Fault.error(502, path="/api/v1/instances/")] * 4,
                  "terminate-503": [Fault.error(503, path="/api/v1/instance-operations/terminate")] * 4,
                  "list-503": [Fault.error(503, path="/api/v1/instances", method="GET")] * 4}
        self.api.faults.next(*faults[name])
        return True

    def stop(self) -> None:
        assert self.api is not None
        self.api.stop()


class AwsWorld(World):
    """EC2/SSM/STS under moto's server on loopback (gpuctl's own calls), S3 also on the host's veth (the URLs the
    machine gets); moto's state is shared by both servers, in this process."""

    kind = "aws"
    bucket = "gpuctl-hf-cache-123456789012-us-east-1"

    def __init__(self, host: FakeGpuHost) -> None:
        import logging

        from moto.ec2.models import elastic_network_interfaces
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.host = host
        for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("MOTO_EC2_LOAD_DEFAULT_AMIS", "false"), ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ[key] = value
        elastic_network_interfaces.random_public_ip = lambda: host.address  # every instance is the fake host
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.s3_server = ThreadedMotoServer(ip_address=f"10.200.{host.index}.1", port=0, verbose=False)
        self.s3_server.start()
        self.url = "http://{}:{}".format(*self.server.get_host_and_port())
        self.s3_url = "http://{}:{}".format(*self.s3_server.get_host_and_port())
        os.environ["AWS_ENDPOINT_URL"] = self.url
        import boto3

        from tests.providers.test_aws_lifecycle import register_dlami

        register_dlami(boto3.Session())
        self.ec2 = boto3.client("ec2", region_name="us-east-1")
        self.s3 = boto3.client("s3", region_name="us-east-1")

    def env(self) -> dict[str, str]:
        assert self.host is not None and self.host.hub is not None
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": self.url,
                "AWS_ENDPOINT_URL_S3": self.s3_url, "GPUCTL_CALLER_CIDR": "10.200.0.0/16",
                "FAULT_RUNNER_AWS_PRICES": "1", "HF_ENDPOINT": self.host.hub.url}

    def up_args(self, name: str, model: str) -> list[str]:
        return ["up", model, "--provider", "aws", "--gpu", "L40S", "--name", name, "-y", "--ttl", "1h",
                "--ssh-timeout", "20s"]

    def prepare(self, project: Project) -> None:
        super().prepare(project)
        from gpuctl.host.keys import ensure_project_key

        assert self.host is not None
        with (self.host.home / ".ssh" / "authorized_keys").open("a") as keys:  # what the key pair allows
            keys.write(ensure_project_key(project.state_dir).public_key + "\n")
        with contextlib.suppress(Exception):  # the region's mirror, empty again
            for item in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
                self.s3.delete_object(Bucket=self.bucket, Key=item["Key"])

    def billing(self) -> list[str]:
        live = [f"instance {i['InstanceId']}" for r in self.ec2.describe_instances()["Reservations"]
                for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")]
        try:
            uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        except Exception:  # no bucket yet
            uploads = []
        return live + [f"upload {u['Key'].rsplit('/', 1)[-1][:12]}" for u in uploads]

    def stop(self) -> None:
        self.server.stop()
        self.s3_server.stop()


# -- trials --------------------------------------------------------------------------------------------------
@dataclass
class Result:
    kind: str
    fault_class: str
    fault: str
    exit_code: int | None
    left_after_fault: list[str] = field(default_factory=list)
    left_after_recovery: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    #: the last line ``up`` wrote on stderr
    up_said: str = ""


class Campaign:
    def __init__(self, base: Path, fh_env: FakeHostEnv | None) -> None:
        self.base = base
        self.fh_env = fh_env
        self.counter = 0
        self.requests_before = 0

    def name(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    @contextlib.contextmanager
    def stall_fetch(self, world: World) -> Iterator[Any]:
        """The next download of the model's first shard stops after a byte until released."""
        assert world.host is not None and world.host.hub is not None
        hub = world.host.hub
        model = hub.repos.get(REPO) or hub.add(tiny_model(REPO, commit=COMMIT))
        shard = next(data for name, data in sorted(model.files.items()) if name.startswith("model-0"))
        stall = hub.stall(hashlib.sha256(shard).hexdigest(), after=1)
        try:
            yield stall
        finally:
            stall.release.set()

    def wait_point(self, world: World, project: Project, name: str, point: str, up: subprocess.Popen[str],
                   stall: Any) -> bool:
        """Wait until ``up`` reaches ``point``; False when it ended first."""
        deadline = time.monotonic() + UP_TIMEOUT_S
        seen = self.requests_before
        while time.monotonic() < deadline:
            if up.poll() is not None:
                return False
            if point == "in-flight":
                calls = [r for r in (world.api.requests[seen:] if world.api else []) if r.method == "POST"
                         and (r.path == "/v2/pods" or r.path.endswith("/launch"))]
                if world.kind == "aws":
                    if "launching" in project.events(name) and "launched" not in project.events(name):
                        time.sleep(0.2)  # the RunInstances call is under way
                        return True
                elif calls:
                    return True
            elif point == "fetching":
                if stall is not None and stall.reached.wait(0.05):
                    return True
            elif point == "health":
                if "engine-started" in project.events(name):
                    time.sleep(0.5)
                    return True
            elif point in project.events(name):
                return True
            time.sleep(0.05)
        return False

    def trial(self, world: World, fault_class: str, fault: str, *, point: str | None = None,
              action: Callable[[Project, str, subprocess.Popen[str]], None] | None = None, model: str | None = None,
              env: dict[str, str] | None = None, before: Callable[[Project], None] | None = None,
              up_extra: tuple[str, ...] = (), recover: Callable[[Project, str], None] | None = None) -> Result:
        started = time.monotonic()
        project = new_project(self.base, world.env())
        name = self.name()
        if before is not None:
            before(project)
        world.prepare(project)
        if point == "in-flight":
            world.slow_create(3.0)
        self.requests_before = len(world.api.requests) if world.api else 0
        with contextlib.ExitStack() as stack:
            stall = stack.enter_context(self.stall_fetch(world)) if point == "fetching" else None
            up = project.gpuctl(*world.up_args(name, model or world.model), *up_extra, env=env)
            reached = point is None or self.wait_point(world, project, name, point, up, stall)
            if action is not None and reached:
                action(project, name, up)
            if stall is not None:
                stall.release.set()
            try:
                _, stderr = up.communicate(timeout=UP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                up.kill()
                _, stderr = up.communicate()
        code = up.returncode
        time.sleep(0.2)
        left = world.billing() if code != 0 else []  # a deployment that came up is meant to run
        if recover is not None:
            recover(project, name)
        else:
            recover_as_a_user(world, project, name)
        if world.kind in ("runpod", "lambda", "aws"):  # a create cut off may land late: give it its time
            time.sleep(0.5)
        remaining = world.billing()
        last = stderr.strip().splitlines()[-1][:240] if stderr.strip() else ""
        note = "" if reached else f"the point was not reached: up ended first: {last}"
        if remaining and reached:
            note = last
        if world.kind in ("lambda", "aws") or remaining:
            world.wipe_host()  # what a terminated machine takes along; after a failure (counted): a clean start
        if os.path.ismount(project.state_dir):
            subprocess.run(["umount", "-l", str(project.state_dir)], check=False)
        shutil.rmtree(project.root, ignore_errors=True)
        return Result(world.kind, fault_class, fault, code, left, remaining, round(time.monotonic() - started, 1),
                      note, last)


def recover_as_a_user(world: World, project: Project, name: str) -> None:
    """What a user does after any failure: make the directory writable, 'down NAME', then 'gc -y'."""
    mount = project.state_dir
    if os.path.ismount(mount):
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=False)
        (mount / "filler").unlink(missing_ok=True)
    code, _ = project.run("down", name, timeout=400)
    if code == 2 and isinstance(world, HostWorld):  # an unreadable state file: what the host has, by name
        project.run("down", name, "--host", world.host.target if world.host else "", "--identity",
                    str(world.fh_env.client_key), timeout=120)
    project.run("gc", "-y", timeout=400)


def signal_at(sig: signal.Signals) -> Callable[[Project, str, subprocess.Popen[str]], None]:
    def deliver(project: Project, name: str, up: subprocess.Popen[str]) -> None:
        up.send_signal(sig)

    return deliver


def race(*down_args: str) -> Callable[[Project, str, subprocess.Popen[str]], None]:
    def down(project: Project, name: str, up: subprocess.Popen[str]) -> None:
        project.run(*[name if arg == "NAME" else arg for arg in down_args], timeout=400)

    return down


def mount_small(project: Project) -> None:
    project.state_dir.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(project.state_dir)], check=True)


def local_fault(kind: str) -> Callable[[Project, str, subprocess.Popen[str]], None]:
    def apply(project: Project, name: str, up: subprocess.Popen[str]) -> None:
        if kind == "read-only":  # refused while a file is open for writing there (a state write): try again
            for _ in range(100):
                if subprocess.run(["mount", "-o", "remount,ro", str(project.state_dir)], check=False,
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.01)
        else:
            fd = os.open(project.state_dir / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            for size in (65536, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
            os.close(fd)

    return apply


def corrupt_state(project: Project, name: str, up: subprocess.Popen[str]) -> None:
    up.wait(timeout=UP_TIMEOUT_S)
    (project.state_dir / "state.json").write_text('{"schema_version": 1, "deployments": {')


def recover_corrupt(world: World) -> Callable[[Project, str], None]:
    """A corrupt state file: on a host, 'down NAME --host'; elsewhere the file moved aside, then 'gc -y'."""

    def recover(project: Project, name: str) -> None:
        if isinstance(world, HostWorld):
            assert world.host is not None
            project.run("down", name, "--host", world.host.target, "--identity", str(world.fh_env.client_key))
        else:
            (project.state_dir / "state.json").rename(project.state_dir / "state.json.corrupt")
        project.run("gc", "-y", timeout=400)

    return recover


def plan_trials(campaign: Campaign, world: World, signals: list[str]) -> Iterator[tuple[str, Callable[[], Result]]]:
    """(fault class, trial) for every fault this kind is put through."""
    kind = world.kind
    trial = partial(campaign.trial, world)

    def deaf(point: str | None) -> dict[str, Any]:
        """An engine that never answers where the fault lands while it loads ('health')."""
        if point != "health":
            return {}
        return {"env": world.deaf()} if kind == "runpod" else {"model": "deaf"}

    for point in POINTS[kind]:
        for sig in signals:
            yield "signal", partial(trial, "signal", f"{sig}@{point}", point=point, action=signal_at(SIGNALS[sig]),
                                    **deaf(point))
    for point in RACE_POINTS[kind]:
        for args in (("down", "NAME"), ("down", "--all")):
            yield "race", partial(trial, "race", f"{' '.join(args)}@{point}", point=point, action=race(*args),
                                  **deaf(point))
    if world.api is not None:
        for fault in ("create-500", "poll-garbled", "poll-502"):
            yield "api", partial(trial, "api", fault, before=lambda _project, f=fault: world.api_fault(f))
        yield "api", partial(trial, "api", "terminate-503 during down", recover=lambda project, name: (
            world.api_fault("terminate-503"), recover_as_a_user(world, project, name)))
        yield "api", partial(trial, "api", "list-503 in recovery", point="in-flight", action=signal_at(signal.SIGKILL),
                             recover=lambda project, name: (world.api_fault("list-503"),
                                                            recover_as_a_user(world, project, name)))
    if kind == "aws":  # moto injects no faults: the calls fail in the 'up' process (see fault_runner.py)
        for fault, errors in (("RunInstances InternalError", "RunInstances=InternalError"),
                              ("DescribeInstances Unavailable", "DescribeInstances=Unavailable")):
            yield "api", partial(trial, "api", fault, env={"FAULT_RUNNER_AWS_ERRORS": errors})
    if kind != "runpod":
        yield "host", partial(trial, "host", "engine crashes at start", model="crash")
    yield "host", partial(trial, "host", "engine never healthy (--health-timeout 5s)",
                          up_extra=("--health-timeout", "5s"), **deaf("health"))
    for point in LOCAL_POINTS[kind]:
        for fault in ("read-only", "full"):
            yield "local", partial(trial, "local", f"{fault}@{point}", point=point, before=mount_small,
                                   action=local_fault(fault))
    yield "local", partial(trial, "local", "state file corrupt after ready", action=corrupt_state,
                           recover=recover_corrupt(world))


def render(results: list[Result]) -> str:
    rows: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        rows.setdefault((result.kind, result.fault_class), []).append(result)
    lines = ["left after fault: trials whose failed or killed 'up' left something billing (or running on the",
             "host); left after down+gc: the same once the user recovered ('down NAME', then 'gc -y')", "",
             f"{'kind':<8} {'faults':<8} {'trials':>6} {'left after fault':>17} {'left after down+gc':>19}"]
    for (kind, fault_class), group in rows.items():
        after_fault = sum(1 for r in group if r.left_after_fault)
        after = sum(1 for r in group if r.left_after_recovery)
        lines.append(f"{kind:<8} {fault_class:<8} {len(group):>6} {after_fault:>17} {after:>19}")
    total = len(results)
    lines.append(f"{'all':<8} {'':<8} {total:>6} {sum(1 for r in results if r.left_after_fault):>17} "
                 f"{sum(1 for r in results if r.left_after_recovery):>19}")
    bad = [r for r in results if r.left_after_recovery]
    if bad:
        lines.append("\ntrials that left something billing after recovery:")
        lines += [f"  {r.kind} {r.fault}: {', '.join(r.left_after_recovery)} ({r.note})" for r in bad]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="host,runpod,lambda,aws", help="comma-separated: host,runpod,lambda,aws")
    parser.add_argument("--signals", default="SIGKILL,SIGINT,SIGTERM", help="comma-separated signal names")
    parser.add_argument("--json", action="store_true", help="print every trial as JSON lines too")
    parser.add_argument("--classes", default="signal,race,api,host,local",
                        help="comma-separated fault classes: signal,race,api,host,local")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the last line 'up' wrote for each trial")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    signals = [s for s in args.signals.split(",") if s]
    classes = set(args.classes.split(","))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: the fake hosts still go
    problem = missing_prerequisites()
    if problem and kinds != ["runpod"]:
        print(f"cannot run fake GPU hosts: {problem}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="gpuctl-faults-"))
    results: list[Result] = []
    hosts: list[FakeGpuHost] = []
    worlds: list[World] = []
    try:
        fh_env = None
        if kinds != ["runpod"]:
            (base / "fakehosts").mkdir()
            fh_env = prepare_env(base / "fakehosts")
        campaign = Campaign(base, fh_env)
        for kind in kinds:
            world = make_world(kind, fh_env, base, hosts)
            worlds.append(world)
            started = time.monotonic()
            for fault_class, run in plan_trials(campaign, world, signals):
                if fault_class not in classes:
                    continue
                result = run()
                results.append(result)
                mark = "LEFT " + ", ".join(result.left_after_recovery) if result.left_after_recovery else "ok"
                print(f"[{kind}] {result.fault_class:<6} {result.fault:<40} exit {result.exit_code!s:>4} "
                      f"{result.seconds:5.1f}s  {mark}{'  (' + result.note + ')' if result.note else ''}",
                      file=sys.stderr, flush=True)
                if args.verbose:
                    print(f"    up: {result.up_said}", file=sys.stderr, flush=True)
                if args.json:
                    print(json.dumps(asdict(result)), flush=True)
            print(f"[{kind}] {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    finally:
        for world in worlds:
            stop = getattr(world, "stop", None)
            if stop is not None:
                stop()
        for host in hosts:
            host.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(render(results))
    return 1 if any(r.left_after_recovery for r in results) else 0


def make_world(kind: str, fh_env: FakeHostEnv | None, base: Path, hosts: list[FakeGpuHost]) -> World:
    if kind == "runpod":
        return RunPodWorld()
    assert fh_env is not None
    gpus = [FakeGpu(name="NVIDIA H100 80GB HBM3", memory_total_mib=81559)] if kind == "lambda" else None
    host = fh_env.new_host(gpus).start()
    hosts.append(host)
    assert host.hub is not None
    host.hub.add(tiny_model(REPO, commit=COMMIT))
    if kind == "host":
        return HostWorld(host, fh_env)
    if kind == "lambda":
        return LambdaWorld(host, base)
    return AwsWorld(host)


if __name__ == "__main__":
    sys.exit(main())
