"""A stand-in for RunPod's REST v2 API, held to ``specs/runpod_rest_v2.json``.

Serves the GPU catalog (``GET /v2/catalog/gpus[/{id}]``, with per-cloud, per-datacenter stock)
and the account's SSH keys (``GET/PUT /v2/account/ssh-keys``). ``state.pods`` is there for the
pod endpoints to come. Run standalone::

    python -m tests.standins.runpod_server --port 8101 --delay-ms 300
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from tests.standins.server import Handler, Reply, Request, StandinServer, serve_main

LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")
CLOUDS = ("SECURE", "COMMUNITY")
#: query parameters the spec allows only together with include=AVAILABILITY
_AVAILABILITY_ONLY = ("product", "count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")


@dataclass
class DataCenter:
    id: str
    name: str
    country: str


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

    def entry(self, datacenters: dict[str, DataCenter], *, cloud: str | None = None, count: int = 1,
              countries: list[str] | None = None) -> dict[str, Any]:
        """The catalog entry; with ``cloud`` set, availability for ``count`` GPUs there too."""
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, "pool": self.pool, "manufacturer": self.manufacturer,
            "memory": self.memory, "secure": "SECURE" in self.stock, "community": "COMMUNITY" in self.stock,
            "price": dict(self.price), "maxCount": dict(self.max_count),
        }
        if cloud is None:
            return body
        levels = {dc: level for dc, level in self.stock.get(cloud, {}).items()
                  if countries is None or datacenters[dc].country in countries}
        if count > self.max_count[cloud.lower()]:
            levels = {}
        overall = max(levels.values(), key=LEVELS.index, default="NONE")
        body["availability"] = overall
        if overall != "NONE" and self.per_datacenter:
            body["dataCenters"] = [{"id": dc, "name": datacenters[dc].name, "availability": level}
                                   for dc, level in levels.items()]
        return body


@dataclass
class RunPodState:
    datacenters: dict[str, DataCenter] = field(default_factory=dict)
    gpus: dict[str, GpuStock] = field(default_factory=dict)
    ssh_keys: list[str] = field(default_factory=list)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)

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
                 stock={"SECURE": {"US-KS-2": "HIGH"}, "COMMUNITY": {"EU-RO-1": "MEDIUM", "US-CA-2": "LOW"}}),
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
        GpuStock("NVIDIA B300 SXM6 AC", "B300", 288,
                 price={"secure": 5.99, "community": 0.0}, max_count={"secure": 8, "community": 0},
                 stock={"SECURE": {"US-TX-3": "HIGH"}}),
    ):
        state.add(gpu)
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
            ("GET", "/v2/account/ssh-keys", self.get_ssh_keys),
            ("PUT", "/v2/account/ssh-keys", self.put_ssh_keys),
        ]

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
        if "cudaVersions" in q or "minCudaVersion" in q:
            return self.error(400, "stand-in: CUDA version filters are not implemented")
        countries = q["countryCodes"].split(",") if "countryCodes" in q else None
        return {"cloud": q.get("cloud", "SECURE"), "count": int(q.get("count", 1)), "countries": countries}

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

    # -- account ------------------------------------------------------------------------------------

    def get_ssh_keys(self, req: Request) -> Reply:
        return Reply(200, {"keys": list(self.state.ssh_keys)})

    def put_ssh_keys(self, req: Request) -> Reply:
        self.state.ssh_keys = list(req.body["keys"])
        return Reply(200, {"keys": list(self.state.ssh_keys)})


if __name__ == "__main__":
    serve_main(RunPodStandin)
