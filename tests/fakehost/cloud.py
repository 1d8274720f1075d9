"""A throwaway cloud for the deploy lifecycle tests.

``FakeCloud`` (VM-style, like Lambda/AWS) hands out instances whose SSH address is a fake GPU host and
installs the launch's public key there, as cloud-init would. ``FakePod`` (container-style, like RunPod)
"runs the engine itself": its instances' ``endpoint_url`` is a server the test started. Both keep
their world in a JSON file (``FAKECLOUD_STATE``), so a ``gpuctl`` subprocess sees and changes the same
cloud as the test, and can inject faults per offer: ``capacity`` (NoCapacityError), ``error``
(ProviderError, an HTTP 500), ``hang`` (creates the instance, then never answers).

Registered through ``ProviderRegistry`` directly: the ``fake_cloud`` fixture (tests/fakehost/fixtures.py)
in-process, and ``gpuctl_process`` (``python -c RUNNER ...``) in a subprocess. ``write_recipe`` makes a
project recipe whose engine environment steers the fake engine (see engine_shim.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpuctl.catalog import gpu_spec
from gpuctl.errors import NoCapacityError, NotFoundError, ProviderError
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.ssh import HostProvider

REPO = Path(__file__).resolve().parents[2]
STATE_ENV = "FAKECLOUD_STATE"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
#: a subprocess entry point: gpuctl with the fake clouds registered
RUNNER = "import sys; from tests.fakehost.cloud import main; main(sys.argv[1:])"


def make_offer(provider: str, instance_type: str, price: float, gpu: str = "L40S", count: int = 1,
               region: str = "fake-east-1") -> Offer:
    return Offer(provider=provider, gpu=gpu, gpu_count=count, vram_gb=gpu_spec(gpu).vram_gb, region=region,
                 price_per_hour=price, price_per_gpu_hour=round(price / count, 4), availability="high",
                 instance_type=instance_type, source="live", as_of=NOW)


@contextmanager
def _world(path: Path, write: bool = True) -> Iterator[dict[str, Any]]:
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        world = json.loads(path.read_text())
        try:
            yield world
        finally:  # a launch that raises has still been recorded
            if write:
                path.write_text(json.dumps(world, indent=1))


class FakeCloud(Provider):
    name = "fakecloud"
    display_name = "Fake Cloud"
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE})

    @property
    def path(self) -> Path:
        return Path(os.environ[STATE_ENV])

    def offers(self, query: OfferQuery) -> list[Offer]:
        with _world(self.path, write=False) as world:
            return [Offer.model_validate(o) for o in world["offers"] if o["provider"] == self.name]

    def launch(self, request: LaunchRequest) -> Instance:
        with _world(self.path) as world:
            fault = world["faults"].get(request.offer.instance_type)
            world["launches"].append({"offer": request.offer.id, "token": request.idempotency_token,
                                      "tags": request.tags, "ttl": request.ttl_seconds,
                                      "engine": request.engine is not None, "secrets": sorted(request.secrets)})
            if fault == "capacity":
                raise NoCapacityError(f"{request.offer.instance_type} is sold out")
            if fault == "error":
                raise ProviderError("HTTP 500 from the fake cloud: internal error")
            existing = [i for i in world["instances"].values() if i["token"] == request.idempotency_token]
            instance = existing[0] if existing else self._create(world, request)
        if fault == "hang":
            time.sleep(3600)  # the instance exists, but the answer never comes
        return self._view(instance)

    def _create(self, world: dict[str, Any], request: LaunchRequest) -> dict[str, Any]:
        instance_id = f"{self.name}-{len(world['instances']) + 1}"
        # a machine per instance type (Cloud.host_for), else the next of several (Cloud.use_hosts), round robin
        host = world.get("hosts", {}).get(request.offer.instance_type)
        if host is None:
            pool = world.get("host_pool") or []
            host = pool[len(world["instances"]) % len(pool)] if pool else world["host"]
        authorized_keys = host.get("authorized_keys") or world.get("authorized_keys")
        if request.ssh_public_key and authorized_keys:
            with open(authorized_keys, "a", encoding="utf-8") as keys:
                keys.write(request.ssh_public_key + "\n")
        instance = {"id": instance_id, "provider": self.name, "token": request.idempotency_token,
                    "tags": request.tags, "status": "running", "region": request.offer.region,
                    "gpu": request.offer.gpu, "gpu_count": request.offer.gpu_count,
                    "price": request.offer.price_per_hour, "ssh_host": host.get("address"),
                    "ssh_port": host.get("port", 22), "ssh_user": host.get("user", "root"),
                    "docker_host": host.get("docker_host"), "endpoint_url": world.get("endpoint_url")}
        world["instances"][instance_id] = instance
        return instance

    def get(self, instance_id: str) -> Instance:
        with _world(self.path, write=False) as world:
            instance = world["instances"].get(instance_id)
        if instance is None:
            raise NotFoundError(f"no instance {instance_id}")
        return self._view(instance)

    def terminate(self, instance_id: str) -> None:
        with _world(self.path) as world:
            world["terminations"].append(instance_id)
            instance = world["instances"].get(instance_id)
            if instance is not None and instance["status"] != "terminated":
                instance["status"] = "terminated"
                _wipe(instance.get("docker_host") or world["host"].get("docker_host"))

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        with _world(self.path, write=False) as world:
            if world["faults"].get(f"list:{self.name}") == "error":
                raise ProviderError("HTTP 503 from the fake cloud: try again later")
            return [self._view(i) for i in world["instances"].values()
                    if i["provider"] == self.name and tags.items() <= i["tags"].items()]

    def engine_logs(self, instance_id: str, tail: int | None = None) -> str:
        return f"engine log of {instance_id}\n"

    def _view(self, i: dict[str, Any]) -> Instance:
        pod = self.can(Capability.ENGINE_CONTAINER)
        return Instance(provider=self.name, id=i["id"], status=i["status"], region=i["region"], gpu=i["gpu"],
                        gpu_count=i["gpu_count"], price_per_hour=i["price"], tags=i["tags"],
                        ssh_host=None if pod else i["ssh_host"], ssh_port=i["ssh_port"],
                        ssh_user=i["ssh_user"], endpoint_url=i["endpoint_url"] if pod else None,
                        private_ip=None if pod else i["ssh_host"])


def _wipe(docker_host: str | None) -> None:
    """What destroying the machine does to the fake host: every container goes."""
    if not docker_host:
        return
    env = {**os.environ, "DOCKER_HOST": docker_host}
    ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True, text=True, check=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "--force", *ids], env=env, capture_output=True, check=True)


class FakePod(FakeCloud):
    """Container-style: the provider runs the engine; the instance's endpoint_url serves it."""

    name = "fakepod"
    display_name = "Fake Pods"
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.ENGINE_CONTAINER,
                              Capability.ENGINE_LOGS})


class FakeCluster(FakeCloud):
    """VM-style, and places several machines together for one engine (``launch_nodes``): each node is the
    next of ``Cloud.use_hosts``'s machines. Faults per offer as for ``launch``."""

    name = "fakecluster"
    display_name = "Fake Cluster Cloud"
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE,
                              Capability.MULTI_NODE})

    def launch_nodes(self, request: LaunchRequest, nodes: int) -> list[Instance]:
        with _world(self.path) as world:
            fault = world["faults"].get(request.offer.instance_type)
            world["launches"].append({"offer": request.offer.id, "token": request.idempotency_token,
                                      "tags": request.tags, "ttl": request.ttl_seconds, "nodes": nodes,
                                      "engine": False, "secrets": []})
            if fault == "capacity":
                raise NoCapacityError(f"{request.offer.instance_type} x{nodes} cannot be placed together")
            if fault == "error":
                raise ProviderError("HTTP 500 from the fake cloud: internal error")
            made = []
            for rank in range(nodes):
                token = f"{request.idempotency_token}/{rank}"
                existing = [i for i in world["instances"].values() if i["token"] == token]
                made.append(existing[0] if existing else self._create(
                    world, request.model_copy(update={"idempotency_token": token})))
        return [self._view(instance) for instance in made]

    def release_nodes(self, tags: dict[str, str]) -> None:
        with _world(self.path) as world:
            world.setdefault("released", []).append(tags)


CLASSES: dict[str, type[Provider]] = {"fakecloud": FakeCloud, "fakepod": FakePod, "fakecluster": FakeCluster,
                                      "ssh": HostProvider}


def registry() -> ProviderRegistry:
    return ProviderRegistry(classes=dict(CLASSES))


def main(argv: list[str]) -> None:
    """``gpuctl`` with the fake clouds as its only providers (the subprocess entry point)."""
    ProviderRegistry.discover = classmethod(lambda cls, eps=None: registry())  # type: ignore[method-assign]
    from gpuctl.__main__ import main as gpuctl_main

    gpuctl_main(argv)


class Cloud:
    """The test's handle on the fake world."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text(json.dumps({"offers": [], "faults": {}, "instances": {}, "launches": [], "terminations": [],
                                    "host": {}, "authorized_keys": None, "endpoint_url": None}))

    def use_host(self, host: Any, port: int | None = None) -> None:
        """Hand out ``host`` (a FakeGpuHost) as every instance's machine; ``port`` overrides its SSH port."""
        self.set(host={"address": host.address, "port": port or host.port, "user": host.user,
                       "docker_host": host.docker_env["DOCKER_HOST"]},
                 authorized_keys=str(host.home / ".ssh" / "authorized_keys"))

    def use_hosts(self, hosts: list[Any]) -> None:
        """Hand out ``hosts`` (FakeGpuHosts) round robin, one per new instance: several machines."""
        self.set(host_pool=[{"address": h.address, "port": h.port, "user": h.user,
                             "docker_host": h.docker_env["DOCKER_HOST"],
                             "authorized_keys": str(h.home / ".ssh" / "authorized_keys")} for h in hosts])

    def host_for(self, instance_type: str, host: Any) -> None:
        """Hand out ``host`` (a FakeGpuHost) as the machine of every instance of ``instance_type`` (a machine per
        GPU model, for the sweep)."""
        with _world(self.path) as world:
            world.setdefault("hosts", {})[instance_type] = {
                "address": host.address, "port": host.port, "user": host.user,
                "docker_host": host.docker_env["DOCKER_HOST"],
                "authorized_keys": str(host.home / ".ssh" / "authorized_keys")}

    def set(self, **values: Any) -> None:
        with _world(self.path) as world:
            world.update(values)

    def add_offer(self, offer: Offer, fault: str | None = None) -> Offer:
        with _world(self.path) as world:
            world["offers"].append(offer.model_dump(mode="json"))
            if fault:
                world["faults"][offer.instance_type] = fault
        return offer

    def add_instance(self, provider: str, tags: dict[str, str], price: float = 1.0,
                     status: str = "running") -> str:
        """An instance that exists at the provider, whoever launched it; returns its id."""
        with _world(self.path) as world:
            instance_id = f"{provider}-{len(world['instances']) + 1}"
            world["instances"][instance_id] = {
                "id": instance_id, "provider": provider, "token": instance_id, "tags": tags, "status": status,
                "region": "fake-east-1", "gpu": "L40S", "gpu_count": 1, "price": price, "ssh_host": None,
                "ssh_port": 22, "ssh_user": "root", "endpoint_url": world.get("endpoint_url")}
        return instance_id

    @property
    def world(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())

    def live(self) -> list[dict[str, Any]]:
        """Instances not terminated: what would still be billing."""
        return [i for i in self.world["instances"].values() if i["status"] != "terminated"]


def gpuctl_process(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
                   **popen: Any) -> subprocess.Popen[str]:
    """A real ``gpuctl`` process (with the fake clouds), in the current (project) directory; ``prefix`` wraps
    it (e.g. ``nsenter --net=...``)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([*prefix, sys.executable, "-c", RUNNER, *args], env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def run_gpuctl(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``gpuctl_process`` run to its end."""
    process = gpuctl_process(*args, env=env, prefix=prefix)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write_recipe(project: Path, name: str = "tiny", env: dict[str, str] | None = None, gated: bool = False) -> str:
    """A project recipe (Llama 3 8B, ungated unless ``gated``) whose engine (vLLM or SGLang) gets ``env``: how
    tests steer the fake engine (``FAKE_ENGINE_EXIT``, ``FAKE_ENGINE_MOCK_ARGS``, ``FAKE_ENGINE_SPEED``, see
    engine_shim.py)."""
    import yaml

    recipe = yaml.safe_load((REPO / "recipes" / "llama-3-8b.yaml").read_text())
    recipe.update(name=name, gated=gated, engines={"vllm": {"env": env or {}}, "sglang": {"env": env or {}}, "tgi": {}})
    (project / "recipes").mkdir(exist_ok=True)
    (project / "recipes" / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    return name


def add_deployment(project: Path, name: str, **fields: Any) -> None:
    """Write a deployment record into the project's state file, as an earlier ``gpuctl up`` would have."""
    from gpuctl.deploy.naming import project_id
    from gpuctl.models.deployment import Deployment
    from gpuctl.state import StateStore

    store = StateStore(project)
    values: dict[str, Any] = {"model": "tiny", "provider": "fakecloud", "status": "running",
                              "idempotency_token": f"tok-{name}", "project_id": project_id(store.dir), **fields}
    with store.transaction() as state:
        state.deployments[name] = Deployment(name=name, **values)
