"""A stand-in for the Lambda Cloud API v1, held to ``specs/lambda_cloud_openapi.json``.

Serves instance types with per-region capacity (``GET /api/v1/instance-types``), regions, and
SSH keys (``GET/POST /api/v1/ssh-keys``, ``DELETE /api/v1/ssh-keys/{id}``). ``state.instances``
is there for the instance endpoints to come. Run standalone::

    python -m tests.standins.lambda_server --port 8102 --delay-ms 300
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.standins.server import Handler, Reply, Request, StandinServer, serve_main

# (code, message, suggestion) per status. 400-404 are the spec's per-path schemas and their
# defaults; Lambda documents no body for 429, so that code is ours; 5xx follow the overview
# ("provider/*" for upstream trouble) and ApiErrorInternal.
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("global/invalid-parameters", "Invalid request data.", None),
    401: ("global/invalid-api-key", "API key was invalid, expired, or deleted.",
          "Check your API key or create a new one, then try again."),
    403: ("global/account-inactive", "Your account is inactive.",
          "Make sure you have verified your email address and have a valid payment method. "
          "Contact Support if problems continue."),
    404: ("global/not-found", "The requested resource was not found.", None),
    429: ("global/rate-limited", "Too many requests.", "Slow down and try again."),
    500: ("global/internal-error", "An internal server error occurred.",
          "Try again later. Contact Support if the problem persists."),
    502: ("provider/internal-unavailable", "Provider unavailable", "Try again shortly"),
    503: ("provider/internal-unavailable", "Provider unavailable", "Try again shortly"),
}


@dataclass
class LambdaState:
    regions: dict[str, str] = field(default_factory=dict)  # name -> description
    instance_types: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> InstanceType
    capacity: dict[str, list[str]] = field(default_factory=dict)  # type name -> regions with capacity
    ssh_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> SSHKey
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_type(self, name: str, description: str, gpu: str, cents: int, specs: tuple[int, int, int, int],
                 regions: list[str]) -> None:
        vcpus, memory, storage, gpus = specs
        self.instance_types[name] = {
            "name": name, "description": description, "gpu_description": gpu, "price_cents_per_hour": cents,
            "specs": {"vcpus": vcpus, "memory_gib": memory, "storage_gib": storage, "gpus": gpus},
        }
        self.capacity[name] = list(regions)


def default_state() -> LambdaState:
    """A realistic catalog: the spec's own example type (gpu_8x_h100_sxm5gdr), types with
    capacity in one or more regions, one sold out everywhere, and one gpuctl does not know."""
    state = LambdaState(regions={
        "us-west-1": "California, USA", "us-east-1": "Virginia, USA",
        "us-south-1": "Texas, USA", "us-east-3": "Washington DC, USA",
    })
    state.add_type("gpu_1x_a10", "1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 75, (30, 200, 1400, 1),
                   ["us-west-1", "us-east-1"])
    state.add_type("gpu_1x_h100_sxm5", "1x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 329, (26, 225, 2750, 1),
                   ["us-south-1"])
    state.add_type("gpu_8x_h100_sxm5gdr", "8x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 3592,
                   (208, 1800, 24780, 8), ["us-west-1"])
    state.add_type("gpu_8x_a100_80gb_sxm4", "8x A100 (80 GB SXM4)", "A100 (80 GB SXM4)", 1432,
                   (240, 1800, 19500, 8), [])
    state.add_type("gpu_1x_gh200", "1x GH200 (96 GB)", "GH200 (96 GB)", 149, (64, 432, 4096, 1), ["us-east-3"])
    state.add_type("gpu_8x_b300_sxm6", "8x B300 (288 GB SXM6)", "B300 (288 GB SXM6)", 4792,
                   (224, 2900, 27000, 8), ["us-south-1"])
    return state


class LambdaStandin(StandinServer):
    spec_name = "lambda_cloud_openapi.json"
    display_name = "Lambda Cloud"

    def __init__(self, *, state: LambdaState | None = None, **kwargs: Any) -> None:
        self.state = state or default_state()
        super().__init__(**kwargs)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/api/v1/instance-types", self.list_instance_types),
            ("GET", "/api/v1/regions", self.list_regions),
            ("GET", "/api/v1/ssh-keys", self.list_ssh_keys),
            ("POST", "/api/v1/ssh-keys", self.add_ssh_key),
            ("DELETE", "/api/v1/ssh-keys/{id}", self.delete_ssh_key),
        ]

    def error(self, status: int, detail: str) -> Reply:
        code, message, suggestion = _ERRORS.get(status, _ERRORS[500])
        # Lambda words auth, rate and server errors the same every time; say what was invalid or missing.
        body: dict[str, Any] = {"code": code, "message": detail if status in (400, 404) and detail else message}
        if suggestion:
            body["suggestion"] = suggestion
        return Reply(status, {"error": body})

    def list_instance_types(self, req: Request) -> Reply:
        data = {
            name: {
                "instance_type": spec,
                "regions_with_capacity_available": [
                    {"name": r, "description": self.state.regions[r]} for r in self.state.capacity.get(name, [])
                ],
            }
            for name, spec in self.state.instance_types.items()
        }
        return Reply(200, {"data": data})

    def list_regions(self, req: Request) -> Reply:
        return Reply(200, {"data": [{"name": n, "description": d} for n, d in self.state.regions.items()]})

    def list_ssh_keys(self, req: Request) -> Reply:
        return Reply(200, {"data": list(self.state.ssh_keys.values())})

    def add_ssh_key(self, req: Request) -> Reply:
        name = req.body["name"]
        if "public_key" not in req.body:
            return self.error(400, "stand-in: generating key pairs is not implemented")
        if any(k["name"] == name for k in self.state.ssh_keys.values()):
            return self.error(400, f"An SSH key named {name!r} already exists.")
        key = {"id": uuid.uuid4().hex, "name": name, "public_key": req.body["public_key"]}
        self.state.ssh_keys[key["id"]] = key
        return Reply(200, {"data": key})

    def delete_ssh_key(self, req: Request) -> Reply:
        if self.state.ssh_keys.pop(req.params["id"], None) is None:
            return self.error(404, "SSH key not found.")
        return Reply(200, {"data": {}})


if __name__ == "__main__":
    serve_main(LambdaStandin)
