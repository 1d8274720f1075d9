"""A stand-in for RunPod's REST v2 API, held to ``specs/runpod_rest_v2.json``.

Serves the GPU and CPU catalogs (``GET /v2/catalog/gpus[/{id}]``, with per-cloud, per-datacenter
stock; ``GET /v2/catalog/cpus``), the account's SSH keys (``GET/PUT /v2/account/ssh-keys``), network
volumes (``GET/POST /v2/network-volumes``, ``GET/PATCH/DELETE /v2/network-volumes/{id}``) and pods
(``POST/GET /v2/pods``, ``GET/DELETE /v2/pods/{id}``, ``POST /v2/pods/{id}/action``), GPU or CPU, and
what each pod was billed (``GET /v2/billing/pods``: the pod's cost per hour while it existed, plus its
disk, in time buckets; ``state.usage`` holds each pod's billed span, which tests may move). A
create is placed only where the catalog shows stock, in the cloud asked for, and with a network volume
only in the volume's data center and in Secure Cloud; a pod goes PROVISIONING -> STARTING -> RUNNING as
it is polled (``state.boot_polls`` reads, and at least ``state.boot_seconds``), and its SSH address is
``state.address`` (a fake GPU host's 10.200.N.2 in end-to-end tests). With ``state.docker_host`` set
(a fake GPU host's docker socket), a pod really runs: its image, with ``args`` for the image's own
entrypoint, its environment, its ``N/http`` ports published on the host and its network volume as the
docker volume ``runpod-volume-ID`` (so files outlive pods), as RunPod would; it is EXITED once its
container ends. Run standalone::

    python -m tests.standins.runpod_server --port 8101 --delay-ms 300
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

from tests.standins.server import Handler, RecordedRequest, Reply, Request, StandinServer, serve_main

#: what RunPod answers (400) when a create cannot be placed
NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")
_ACTIONS = {"PROVISIONING": ["stop", "terminate"], "STARTING": ["stop", "terminate"],
            "RUNNING": ["stop", "restart", "terminate"], "EXITED": ["start", "terminate"],
            "ERROR": ["start", "terminate"]}

LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")
#: the spec's example policy: 60 requests a minute, 3000 an hour, 50,000 a day
RATE_LIMIT_POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'
CLOUDS = ("SECURE", "COMMUNITY")
#: query parameters the spec allows only together with include=AVAILABILITY
_AVAILABILITY_ONLY = ("product", "count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")


@dataclass
class DataCenter:
    id: str
    name: str
    country: str


@dataclass
class CpuStock:
    """One CPU flavor: vCPU range, RAM per vCPU, price, and pod stock per datacenter."""

    id: str
    name: str
    vcpu_min: int
    vcpu_max: int
    ram_gb_per_vcpu: float
    price_per_vcpu: float
    stock: dict[str, str]  # datacenter id -> level

    def entry(self, datacenters: dict[str, DataCenter], *, availability: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, "group": "Gen 3", "vcpu": {"min": self.vcpu_min, "max": self.vcpu_max},
            "ramGbPerVcpu": self.ram_gb_per_vcpu,
            "price": {"securePerVcpu": self.price_per_vcpu, "serverlessPerVcpu": self.price_per_vcpu},
        }
        if availability:
            body["availability"] = max(self.stock.values(), key=LEVELS.index, default="NONE")
            if body["availability"] != "NONE":
                body["dataCenters"] = [{"id": dc, "name": datacenters[dc].name, "availability": level}
                                       for dc, level in self.stock.items()]
        return body


@dataclass
class GpuStock:
    """One GPU type: list prices, pod size ceilings, and stock per cloud and datacenter.

    A cloud missing from ``stock`` does not sell the type at all; a cloud present with an empty
    mapping sells it but has none free. ``per_datacenter=False`` answers with the overall level
    only (no ``dataCenters``), which the spec allows.
    """

    id: str
    name: str
    memory: int
    price: dict[str, float]  # "secure", "community", and "serverless" when the GPU has a pool
    max_count: dict[str, int]  # "secure", "community"
    stock: dict[str, dict[str, str]]  # cloud -> {datacenter id: level}
    pool: str | None = None
    manufacturer: str = "NVIDIA"
    per_datacenter: bool = True
    #: datacenter id -> the CUDA version its machines with this GPU run (major.minor); others run DEFAULT_CUDA
    cuda: dict[str, str] = field(default_factory=dict)

    def cuda_of(self, datacenter: str) -> str:
        return self.cuda.get(datacenter, DEFAULT_CUDA)

    def entry(self, datacenters: dict[str, DataCenter], *, cloud: str | None = None, count: int = 1,
              countries: list[str] | None = None, cuda: CudaFilter | None = None) -> dict[str, Any]:
        """The catalog entry; with ``cloud`` set, availability for ``count`` GPUs there too (on machines whose CUDA
        passes ``cuda``), and the CUDA versions offered."""
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, "pool": self.pool, "manufacturer": self.manufacturer,
            "memory": self.memory, "secure": "SECURE" in self.stock, "community": "COMMUNITY" in self.stock,
            "price": dict(self.price), "maxCount": dict(self.max_count),
        }
        if cloud is None:
            return body
        offered = {dc: level for dc, level in self.stock.get(cloud, {}).items()
                   if (countries is None or datacenters[dc].country in countries)
                   and (cuda is None or cuda.accepts(self.cuda_of(dc)))}
        levels = {} if count > self.max_count[cloud.lower()] else offered
        overall = max(levels.values(), key=LEVELS.index, default="NONE")
        body["availability"] = overall
        if overall != "NONE" and self.per_datacenter:
            body["dataCenters"] = [{"id": dc, "name": datacenters[dc].name, "availability": level}
                                   for dc, level in levels.items()]
        if self.manufacturer == "NVIDIA" and offered:  # machines without CUDA (AMD) report no version
            versions = sorted({self.cuda_of(dc) for dc in offered}, key=_cuda_key)
            body["cudaVersions"] = [{"version": v, "available": any(
                level != "NONE" for dc, level in levels.items() if self.cuda_of(dc) == v)} for v in versions]
        return body


#: the CUDA version of a datacenter's machines unless a GPU type says otherwise
DEFAULT_CUDA = "12.8"


def _cuda_key(version: str) -> tuple[int, ...]:
    """``12.11`` above ``12.2``: versions compare numerically, part by part."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class CudaFilter:
    """A catalog query's or a create's CUDA constraint: a floor (``minCudaVersion``) or an exact set."""

    floor: str | None = None
    allowed: tuple[str, ...] = ()

    def accepts(self, version: str) -> bool:
        if self.allowed:
            return version in self.allowed
        if self.floor is None:
            return True
        floor = _cuda_key(self.floor)  # a bare major ("12") means any release of it
        return _cuda_key(version)[:len(floor)] >= floor


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRecord:
    """One pod: the create body as sent, where it was placed, and how far it has started."""

    id: str
    body: dict[str, Any]
    data_center: str
    cost: float
    status: str = "PROVISIONING"
    polls: int = 0
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    created: float = field(default_factory=time.monotonic)
    #: the container's output when no docker engine runs it
    log: list[str] = field(default_factory=lambda: ["INFO starting", "INFO Model loaded."])

    def advance(self, state: RunPodState) -> None:
        """One read of the pod: a starting pod moves on (RUNNING after enough reads and time)."""
        if self.status not in ("PROVISIONING", "STARTING"):
            return
        self.polls += 1
        if self.polls >= state.boot_polls and time.monotonic() - self.created >= state.boot_seconds:
            self.status, self.started_at = "RUNNING", _now()
        else:
            self.status = "STARTING"

    def view(self, state: RunPodState) -> dict[str, Any]:
        """The pod as ``GET /v2/pods/{id}`` shows it."""
        body, running = self.body, self.status == "RUNNING"
        if "gpu" in body:
            compute: dict[str, Any] = {"gpu": {"id": body["gpu"]["id"], "count": body["gpu"].get("count", 1)}}
        else:
            flavor, vcpus = state.cpus[body["cpu"]["id"]], body["cpu"]["vcpuCount"]
            compute = {"cpu": {"id": flavor.id, "vcpuCount": vcpus,
                               "memory": max(1, int(flavor.ram_gb_per_vcpu * vcpus))}}
        ports = list(body.get("ports", []))
        direct = ({"host": state.address, "port": state.ssh_port, "username": "root",
                   "command": f"ssh root@{state.address} -p {state.ssh_port}"}
                  if running and "22/tcp" in ports else None)
        user = f"{self.id}-64411eb2"
        return {
            "id": self.id, "name": body["name"], "image": body.get("image", ""), "args": body.get("args", ""),
            "disk": body.get("disk", 50), "ports": ports, "env": dict(body.get("env", {})), "registry": None,
            "status": self.status, "actions": _ACTIONS[self.status], "mounts": dict(body.get("mounts", {})),
            **compute,
            "cloud": body.get("cloud", "SECURE"), "dataCenterId": self.data_center,
            "cudaVersion": state.gpus[body["gpu"]["id"]].cuda_of(self.data_center) if "gpu" in body else None,
            "ssh": {"proxy": {"host": "ssh.runpod.io", "port": 22, "username": user,
                              "command": f"ssh {user}@ssh.runpod.io"}, "direct": direct},
            "template": None, "cost": self.cost if self.status not in ("EXITED", "TERMINATED") else 0.0,
            "locked": False, "globalNetworking": {"enabled": False},
            "runtime": {"uptime": 1, "ports": [{"private": 22, "public": state.ssh_port, "type": "tcp",
                                                "ip": state.address}]} if running else None,
            "createdAt": self.created_at, "startedAt": self.started_at,
        }


#: what RunPod charges for a pod's container and volume disk, per GB and hour (the stand-in's figure)
DISK_USD_PER_GB_HOUR = 0.10 / 730
_BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


@dataclass
class PodUsage:
    """What one pod is billed for: from ``start`` until ``end`` (None: still billing), per hour."""

    start: datetime
    gpu_per_hour: float
    disk_per_hour: float
    end: datetime | None = None

    def amounts(self, start: datetime, end: datetime) -> tuple[float, float]:
        """(compute, disk) USD billed between ``start`` and ``end``."""
        stop = min(end, self.end or datetime.now(timezone.utc))
        hours = max(0.0, (stop - max(start, self.start)).total_seconds() / 3600)
        return self.gpu_per_hour * hours, self.disk_per_hour * hours


@dataclass
class RunPodState:
    datacenters: dict[str, DataCenter] = field(default_factory=dict)
    gpus: dict[str, GpuStock] = field(default_factory=dict)
    cpus: dict[str, CpuStock] = field(default_factory=dict)
    ssh_keys: list[str] = field(default_factory=list)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    #: ids of pods deleted or terminated, in order
    terminated: list[str] = field(default_factory=list)
    #: network volumes by id, as the API shows them
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every create body of a pod, in order (pods that were deleted since included)
    created: list[dict[str, Any]] = field(default_factory=list)
    #: reads before a new pod is RUNNING, and the least time it takes
    boot_polls: int = 2
    boot_seconds: float = 0.0
    #: the next N creates fail as if the stock ran out between catalog read and create
    capacity_failures: int = 0
    #: address and port of a running pod's sshd (the direct SSH endpoint)
    address: str = "127.0.0.1"
    ssh_port: int = 22
    #: a docker engine (``unix://...``) that runs each pod's container; None: pods run nothing
    docker_host: str | None = None
    #: without docker: what a new CPU pod's container prints (None: the GPU pods' default lines)
    cpu_log: list[str] | None = None
    #: what each pod (terminated ones too) is billed for, by pod id
    usage: dict[str, PodUsage] = field(default_factory=dict)
    #: the ``RateLimit`` header every authenticated answer carries (the quota left per window), e.g.
    #: ``"minute";r=5;t=30``; None: none (a rate-limit-exempt caller, as the spec allows)
    rate_limit: str | None = None

    def add(self, gpu: GpuStock) -> None:
        self.gpus[gpu.id] = gpu


def default_state() -> RunPodState:
    """A small but realistic catalog. The RTX 4090 row is the spec's own example; the rest
    cover every case gpuctl maps: both clouds, one cloud, sold out in a cloud, a datacenter
    listed with no stock, no per-datacenter detail, and a GPU gpuctl does not know."""
    state = RunPodState(datacenters={dc.id: dc for dc in (
        DataCenter("US-KS-2", "US Kansas 2", "US"),
        DataCenter("US-CA-2", "US California 2", "US"),
        DataCenter("US-TX-3", "US Texas 3", "US"),
        DataCenter("EU-RO-1", "EU Romania 1", "RO"),
    )})
    for gpu in (
        GpuStock("NVIDIA GeForce RTX 4090", "RTX 4090", 24, pool="ADA_24",
                 price={"secure": 0.44, "community": 0.31, "serverless": 1.1},
                 max_count={"secure": 8, "community": 4},
                 stock={"SECURE": {"US-KS-2": "HIGH"}, "COMMUNITY": {"EU-RO-1": "MEDIUM", "US-CA-2": "LOW"}},
                 cuda={"US-CA-2": "12.4"}),  # community hosts whose driver is older than the vLLM image's CUDA
        GpuStock("NVIDIA L40S", "L40S", 48, pool="ADA_48_PRO",
                 price={"secure": 0.86, "community": 0.79, "serverless": 1.33},
                 max_count={"secure": 8, "community": 8},
                 stock={"SECURE": {"US-TX-3": "MEDIUM", "EU-RO-1": "LOW"}, "COMMUNITY": {"US-CA-2": "HIGH"}}),
        GpuStock("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, pool="AMPERE_80",
                 price={"secure": 1.49, "community": 1.19, "serverless": 2.72},
                 max_count={"secure": 8, "community": 8},
                 stock={"SECURE": {"US-KS-2": "LOW"}, "COMMUNITY": {}}),
        GpuStock("NVIDIA H100 80GB HBM3", "H100 SXM", 80, pool="ADA_80_PRO",
                 price={"secure": 2.99, "community": 2.69, "serverless": 4.18},
                 max_count={"secure": 8, "community": 2},
                 stock={"SECURE": {"US-KS-2": "HIGH", "US-TX-3": "NONE"}, "COMMUNITY": {"EU-RO-1": "MEDIUM"}}),
        GpuStock("NVIDIA RTX A6000", "RTX A6000", 48, pool="AMPERE_48",
                 price={"secure": 0.49, "community": 0.33, "serverless": 0.85},
                 max_count={"secure": 8, "community": 8}, per_datacenter=False,
                 stock={"SECURE": {"US-KS-2": "MEDIUM"}, "COMMUNITY": {"US-CA-2": "HIGH", "EU-RO-1": "LOW"}}),
        GpuStock("NVIDIA H200", "H200 SXM", 141, pool="HOPPER_141",
                 price={"secure": 3.59, "community": 0.0, "serverless": 5.58},
                 max_count={"secure": 8, "community": 0},
                 stock={"SECURE": {"US-CA-2": "LOW"}}),
        GpuStock("AMD Instinct MI300X OAM", "MI300X", 192, manufacturer="AMD",
                 price={"secure": 2.49, "community": 0.0}, max_count={"secure": 8, "community": 0},
                 stock={"SECURE": {}}),
        GpuStock("NVIDIA GeForce RTX 3070", "RTX 3070", 8,  # an id gpuctl leaves out on purpose
                 price={"secure": 5.99, "community": 0.0}, max_count={"secure": 8, "community": 0},
                 stock={"SECURE": {"US-TX-3": "HIGH"}}),
    ):
        state.add(gpu)
    for cpu in (  # the spec's example flavor, and a dearer one sold in fewer places
        CpuStock("cpu3c-2-4", "Compute-Optimized", 2, 32, 2.5, 0.04,
                 {"US-KS-2": "MEDIUM", "US-TX-3": "HIGH", "EU-RO-1": "LOW"}),
        CpuStock("cpu5c-2-4", "Compute-Optimized", 2, 32, 2.0, 0.06, {"US-TX-3": "HIGH", "US-CA-2": "LOW"}),
    ):
        state.cpus[cpu.id] = cpu
    return state


class RunPodStandin(StandinServer):
    spec_name = "runpod_rest_v2.json"
    display_name = "RunPod"

    def __init__(self, *, state: RunPodState | None = None, **kwargs: Any) -> None:
        self.state = state or default_state()
        super().__init__(**kwargs)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/v2/catalog/gpus", self.list_gpus),
            ("GET", "/v2/catalog/gpus/{id}", self.get_gpu),
            ("GET", "/v2/catalog/cpus", self.list_cpus),
            ("GET", "/v2/network-volumes", self.list_volumes),
            ("POST", "/v2/network-volumes", self.create_volume),
            ("GET", "/v2/network-volumes/{id}", self.get_volume),
            ("PATCH", "/v2/network-volumes/{id}", self.update_volume),
            ("DELETE", "/v2/network-volumes/{id}", self.delete_volume),
            ("GET", "/v2/account/ssh-keys", self.get_ssh_keys),
            ("PUT", "/v2/account/ssh-keys", self.put_ssh_keys),
            ("GET", "/v2/pods", self.list_pods),
            ("POST", "/v2/pods", self.create_pod),
            ("GET", "/v2/pods/{id}", self.get_pod),
            ("GET", "/v2/pods/{id}/logs", self.pod_logs),
            ("DELETE", "/v2/pods/{id}", self.delete_pod),
            ("POST", "/v2/pods/{id}/action", self.pod_action),
            ("GET", "/v2/billing/pods", self.pod_billing),
        ]

    def _route(self, rec: RecordedRequest, *, raw_body: bool) -> Reply:
        reply = super()._route(rec, raw_body=raw_body)
        if self.state.rate_limit is not None:
            reply.headers.setdefault("RateLimit", self.state.rate_limit)
            reply.headers.setdefault("RateLimit-Policy", RATE_LIMIT_POLICY)
        return reply

    def error(self, status: int, detail: str) -> Reply:
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return Reply(status, {"title": title, "status": status, "detail": detail},
                     content_type="application/problem+json")

    # -- catalog ------------------------------------------------------------------------------------

    def _catalog_args(self, req: Request) -> dict[str, Any] | Reply:
        """The availability context a catalog request asks for, or the 400 the API gives."""
        q = {name: values[-1] for name, values in req.query.items()}
        if "include" not in q:
            extra = [p for p in _AVAILABILITY_ONLY if p in q]
            return self.error(400, f"{', '.join(extra)} valid only with include=AVAILABILITY") if extra else {}
        if "product" not in q:
            return self.error(400, "product is required with include=AVAILABILITY")
        if "cudaVersions" in q and "minCudaVersion" in q:
            return self.error(400, "cudaVersions and minCudaVersion are mutually exclusive")
        cuda = None
        if "minCudaVersion" in q or "cudaVersions" in q:
            cuda = CudaFilter(floor=q.get("minCudaVersion"),
                              allowed=tuple(q["cudaVersions"].split(",")) if "cudaVersions" in q else ())
        countries = q["countryCodes"].split(",") if "countryCodes" in q else None
        return {"cloud": q.get("cloud", "SECURE"), "count": int(q.get("count", 1)), "countries": countries,
                "cuda": cuda}

    def list_gpus(self, req: Request) -> Reply:
        args = self._catalog_args(req)
        if isinstance(args, Reply):
            return args
        entries = [gpu.entry(self.state.datacenters, **args) for gpu in self.state.gpus.values()]
        if args.get("countries"):  # types with no datacenter in those countries drop out of the list
            entries = [e for e in entries if e.get("dataCenters")]
        return Reply(200, {"gpus": entries})

    def get_gpu(self, req: Request) -> Reply:
        args = self._catalog_args(req)
        if isinstance(args, Reply):
            return args
        gpu = self.state.gpus.get(req.params["id"])
        if gpu is None:
            return self.error(404, "gpu type not found")
        return Reply(200, gpu.entry(self.state.datacenters, **args))

    def list_cpus(self, req: Request) -> Reply:
        q = {name: values[-1] for name, values in req.query.items()}
        if ("include" in q) != ("product" in q) or ("vcpuCount" in q and "include" not in q):
            return self.error(400, "product and vcpuCount are valid only with include=AVAILABILITY, and product "
                                   "is required with it")
        vcpus = int(q.get("vcpuCount", 2))
        cpus = [c for c in self.state.cpus.values() if "include" not in q or c.vcpu_min <= vcpus <= c.vcpu_max]
        return Reply(200, {"cpus": [c.entry(self.state.datacenters, availability="include" in q) for c in cpus]})

    # -- network volumes ---------------------------------------------------------------------------------

    def list_volumes(self, req: Request) -> Reply:
        return Reply(200, {"networkVolumes": [dict(v) for v in self.state.volumes.values()]})

    def create_volume(self, req: Request) -> Reply:
        body = req.body
        if body["dataCenter"] not in self.state.datacenters:
            return self.error(400, f"data center {body['dataCenter']!r} not found")
        volume = {"id": "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10)),
                  "name": body["name"], "size": body["size"], "dataCenter": body["dataCenter"],
                  "type": body.get("type", "STANDARD")}
        self.state.volumes[volume["id"]] = volume
        return Reply(201, dict(volume))

    def get_volume(self, req: Request) -> Reply:
        volume = self.state.volumes.get(req.params["id"])
        return Reply(200, dict(volume)) if volume else self.error(404, "network volume not found")

    def update_volume(self, req: Request) -> Reply:
        volume = self.state.volumes.get(req.params["id"])
        if volume is None:
            return self.error(404, "network volume not found")
        if req.body.get("size", volume["size"]) < volume["size"]:
            return self.error(400, "network volume storage cannot be reduced")
        volume.update(req.body)
        return Reply(200, dict(volume))

    def delete_volume(self, req: Request) -> Reply:
        volume_id = req.params["id"]
        if volume_id not in self.state.volumes:
            return self.error(404, "network volume not found")
        if any(volume_id in _volume_ids(pod.body) for pod in self.state.pods.values()):
            return self.error(400, "network volume is attached to a pod")
        del self.state.volumes[volume_id]
        if self.state.docker_host:
            self._docker("volume", "rm", "--force", _docker_volume(volume_id))
        return Reply(204)

    # -- account ------------------------------------------------------------------------------------

    def get_ssh_keys(self, req: Request) -> Reply:
        return Reply(200, {"keys": list(self.state.ssh_keys)})

    def put_ssh_keys(self, req: Request) -> Reply:
        self.state.ssh_keys = list(req.body["keys"])
        return Reply(200, {"keys": list(self.state.ssh_keys)})

    # -- pods -----------------------------------------------------------------------------------------------

    def create_pod(self, req: Request) -> Reply:
        body = req.body
        if ("gpu" in body) == ("cpu" in body):
            return self.error(400, "exactly one of gpu or cpu must be set")
        cloud = body.get("cloud", "SECURE")
        if "gpu" in body:
            gpu = self.state.gpus.get(body["gpu"]["id"])
            if gpu is None:
                return self.error(400, f"gpu type {body['gpu']['id']!r} not found")
            count = body["gpu"].get("count", 1)
            stock = gpu.stock.get(cloud)
            if stock is None or count > gpu.max_count[cloud.lower()]:
                return self.error(400, f"{gpu.id} x{count} is not offered in {cloud} cloud")
            cost = round(gpu.price[cloud.lower()] * count, 4)
            wanted_cuda = CudaFilter(floor=body["gpu"].get("minCudaVersion"),
                                     allowed=tuple(body["gpu"].get("allowedCudaVersions") or ()))
            if wanted_cuda.floor and wanted_cuda.allowed:
                return self.error(400, "allowedCudaVersions and minCudaVersion are mutually exclusive")
            stock = {dc: level for dc, level in stock.items() if wanted_cuda.accepts(gpu.cuda_of(dc))}
        else:
            flavor = self.state.cpus.get(body["cpu"]["id"])
            vcpus = body["cpu"]["vcpuCount"]
            if flavor is None or not flavor.vcpu_min <= vcpus <= flavor.vcpu_max or vcpus & (vcpus - 1):
                return self.error(400, f"cpu flavor {body['cpu']['id']!r} with {vcpus} vCPUs not found")
            if cloud != "SECURE" or "persistent" in body.get("mounts", {}):
                return self.error(400, "CPU pods run in Secure Cloud, with container disk and network volumes only")
            stock, cost = flavor.stock, round(flavor.price_per_vcpu * vcpus, 4)
        wanted = body.get("dataCenterIds") or list(stock)
        volume_ids = _volume_ids(body)
        if volume_ids:
            volume = self.state.volumes.get(volume_ids[0])
            if volume is None:
                return self.error(400, f"network volume {volume_ids[0]!r} not found")
            if cloud != "SECURE":
                return self.error(400, "network volumes attach to Secure Cloud pods only")
            wanted = [dc for dc in wanted if dc == volume["dataCenter"]]
        places = [dc for dc in wanted if stock.get(dc, "NONE") != "NONE"]
        if not places or self.state.capacity_failures > 0:
            self.state.capacity_failures = max(0, self.state.capacity_failures - 1)
            return self.error(400, NO_CAPACITY)
        alphabet = string.ascii_lowercase + string.digits
        pod = PodRecord(id="".join(secrets.choice(alphabet) for _ in range(14)), body=body, data_center=places[0],
                        cost=cost)
        if "cpu" in body and self.state.cpu_log is not None:
            pod.log = list(self.state.cpu_log)
        if self.state.docker_host and not self._run_container(pod):
            pod.status = "ERROR"
        self.state.pods[pod.id] = pod
        self.state.created.append(body)
        disk_gb = body.get("disk", 50)
        self.state.usage[pod.id] = PodUsage(start=datetime.now(timezone.utc), gpu_per_hour=cost,
                                            disk_per_hour=disk_gb * DISK_USD_PER_GB_HOUR)
        return Reply(201, pod.view(self.state))

    def _docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.state.docker_host or ""}
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)

    def _run_container(self, pod: PodRecord) -> bool:
        """Start the pod's container the way RunPod does (no entrypoint override); False if docker refused."""
        body = pod.body
        publish = [arg for port in body.get("ports", []) if port.endswith("/http")
                   for arg in ("--publish", f"{port.split('/')[0]}:{port.split('/')[0]}")]
        mounts = [arg for mount in body.get("mounts", {}).get("network", [])
                  for arg in ("--volume", f"{_docker_volume(mount['volumeId'])}:{mount['path']}")]
        gpus = ["--gpus", "all"] if "gpu" in body else []
        with tempfile.TemporaryDirectory() as tmp:
            env_file = os.path.join(tmp, "env")  # the pod's secrets stay out of this machine's process list
            with open(os.open(env_file, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
                handle.writelines(f"{k}={v}\n" for k, v in body.get("env", {}).items())
            started = self._docker("run", "--detach", "--name", f"runpod-{pod.id}", *gpus, "--env-file", env_file,
                                   *publish, *mounts, body["image"], *shlex.split(body.get("args", "")))
        if started.returncode != 0:
            self.crashes.append(f"docker run for pod {pod.id} failed: {started.stderr.strip()}")
        return started.returncode == 0

    def _advance(self, pod: PodRecord) -> None:
        """One read of ``pod``: it moves on, and is EXITED once its container has ended."""
        pod.advance(self.state)
        if self.state.docker_host and pod.status in ("STARTING", "RUNNING"):
            running = self._docker("inspect", "--format", "{{.State.Running}}", f"runpod-{pod.id}")
            if running.stdout.strip() == "false":
                pod.status = "EXITED"

    def list_pods(self, req: Request) -> Reply:
        for pod in list(self.state.pods.values()):
            self._advance(pod)
        return Reply(200, {"pods": [pod.view(self.state) for pod in list(self.state.pods.values())]})

    def get_pod(self, req: Request) -> Reply:
        pod = self.state.pods.get(req.params["id"])
        if pod is None:
            return self.error(404, "pod not found")
        self._advance(pod)
        return Reply(200, pod.view(self.state))

    def pod_logs(self, req: Request) -> Reply:
        """The backfill of the log stream (Server-Sent Events); the stand-in then ends the stream."""
        pod = self.state.pods.get(req.params["id"])
        if pod is None:
            return self.error(404, "pod not found")
        tail = int(req.query.get("tail", ["100"])[-1])
        lines = pod.log
        if self.state.docker_host:
            logs = self._docker("logs", f"runpod-{pod.id}")
            lines = (logs.stdout + logs.stderr).splitlines()
        backfill = lines[-tail:] if tail else []
        first = len(lines) - len(backfill) + 1  # ids number the container's lines, wherever the backfill starts
        events = "".join(f"id: {pod.created_at}/{n:012d}\n"
                         f"data: {json.dumps({'ts': pod.created_at, 'source': 'container', 'line': line})}\n\n"
                         for n, line in enumerate(backfill, first))
        events = events or ": no log lines yet\n\n"  # an SSE comment: the stream is open, with nothing to backfill
        return Reply(200, events, content_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def delete_pod(self, req: Request) -> Reply:
        if self.state.pods.pop(req.params["id"], None) is None:
            return self.error(404, "pod not found")
        if self.state.docker_host:
            self._docker("rm", "--force", f"runpod-{req.params['id']}")
        self.state.terminated.append(req.params["id"])
        usage = self.state.usage.get(req.params["id"])
        if usage is not None and usage.end is None:
            usage.end = datetime.now(timezone.utc)
        return Reply(204)

    # -- billing ------------------------------------------------------------------------------------------

    def pod_billing(self, req: Request) -> Reply:
        """Pod billing records per pod per bucket (only buckets a pod was billed in), over the window the query
        resolves to: startTime snapped down and endTime up to bucket boundaries, or the last ``lastN`` buckets."""
        query = {key: values[-1] for key, values in req.query.items()}
        size = query.get("bucketSize", "day")
        if size not in _BUCKETS:
            return self.error(400, f"bucketSize {size!r} is not supported by this stand-in")
        if "lastN" in query and ("startTime" in query or "endTime" in query):
            return self.error(400, "lastN is mutually exclusive with startTime/endTime")
        now = datetime.now(timezone.utc)
        if "lastN" in query:
            end = _bucket_start(now, size) + _BUCKETS[size]
            start = end - int(query["lastN"]) * _BUCKETS[size]
        else:
            start = _bucket_start(_parse_time(query["startTime"]) if "startTime" in query else now - timedelta(days=30),
                                  size)
            end = _parse_time(query["endTime"]) if "endTime" in query else now
            if end != _bucket_start(end, size):
                end = _bucket_start(end, size) + _BUCKETS[size]
        wanted = query.get("podId")
        records = []
        bucket = start
        while bucket < end:
            bucket_end = bucket + _BUCKETS[size]
            for pod_id, usage in self.state.usage.items():
                if wanted is not None and pod_id != wanted:
                    continue
                gpu, disk = usage.amounts(bucket, bucket_end)
                if gpu + disk > 0:
                    records.append({"startTime": _iso(bucket), "endTime": _iso(bucket_end), "podId": pod_id,
                                    "totalAmount": round(gpu + disk, 6), "gpuAmount": round(gpu, 6),
                                    "cpuAmount": 0.0, "diskAmount": round(disk, 6)})
            bucket = bucket_end
        totals = {key: round(sum(r[key] for r in records), 6)
                  for key in ("totalAmount", "gpuAmount", "cpuAmount", "diskAmount")}
        return Reply(200, {"records": records, "metadata": {
            "query": {"startTime": _iso(start), "endTime": _iso(end), "bucketSize": size, "podId": wanted},
            "recordCount": len(records), "uniquePodCount": len({r["podId"] for r in records}), "totals": totals}})

    def pod_action(self, req: Request) -> Reply:
        pod = self.state.pods.get(req.params["id"])
        if pod is None:
            return self.error(404, "pod not found")
        action = req.body["action"]
        if action not in _ACTIONS[pod.status]:
            return self.error(409, f"cannot {action} a pod that is {pod.status}")
        if action == "terminate":
            return self.delete_pod(req)
        pod.status, pod.polls = {"stop": ("EXITED", 0), "start": ("PROVISIONING", 0),
                                 "restart": ("STARTING", 0)}[action]
        return Reply(200, pod.view(self.state))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucket_start(moment: datetime, size: str) -> datetime:
    """The start of the bucket ``moment`` falls in (weeks start on Monday)."""
    start = moment.replace(minute=0, second=0, microsecond=0)
    if size != "hour":
        start = start.replace(hour=0)
    if size == "week":
        start -= timedelta(days=start.weekday())
    return start


def _volume_ids(body: dict[str, Any]) -> list[str]:
    return [mount["volumeId"] for mount in body.get("mounts", {}).get("network", [])]


def _docker_volume(volume_id: str) -> str:
    return f"runpod-volume-{volume_id}"


if __name__ == "__main__":
    serve_main(RunPodStandin)
