"""A stand-in for the Lambda Cloud API v1, held to ``specs/lambda_cloud_openapi.json``.

Serves instance types with per-region capacity (``GET /api/v1/instance-types``), regions, SSH keys
(``GET/POST /api/v1/ssh-keys``, ``DELETE /api/v1/ssh-keys/{id}``) and instances
(``POST /api/v1/instance-operations/launch|terminate``, ``GET /api/v1/instances[/{id}]``). A launch
succeeds only where ``state.capacity`` lists the type; an instance boots as it is read
(``state.boot_polls`` reads to ``active``, its address ``state.address`` from read
``state.ip_polls`` on, never when ``state.assign_ip`` is off) and ends ``terminating`` ->
``terminated`` on the next read. Firewall rulesets (``GET/POST /api/v1/firewall-rulesets``,
``GET/DELETE /api/v1/firewall-rulesets/{id}``) can be attached at launch; one attached to an instance
that has not terminated cannot be deleted (``firewall-rulesets/firewall-ruleset-in-use``).

Filesystems (``GET /api/v1/file-systems``, ``POST /api/v1/filesystems``, ``DELETE /api/v1/filesystems/{id}``)
are mounted at launch through ``file_system_names`` (at ``/lambda/nfs/NAME``) or ``file_system_mounts``, in
their own region only (``file-system-in-wrong-region``); one mounted on an instance that has not terminated
is in use and cannot be deleted. With ``state.filesystem_dir`` each keeps its content in a directory
there that outlives instances, and ``state.machine`` (a fake GPU host) gets it bind-mounted at the mount
point while an instance uses it: what one instance writes, the next one reads. Run standalone::

    python -m tests.standins.lambda_server --port 8102 --delay-ms 300
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


INSUFFICIENT_CAPACITY = ("instance-operations/launch/insufficient-capacity",
                         "Not enough capacity to fulfill launch request.", "Try again later or choose another region.")
INSTANCE_NOT_FOUND = ("global/object-does-not-exist", "Specified instance does not exist.", None)
RULESET_NOT_FOUND = ("global/object-does-not-exist",
                     "Firewall ruleset does not exist or you do not have permission to access it.",
                     "Check your firewall ruleset ID and try again.")
FILESYSTEM_NOT_FOUND = ("global/object-does-not-exist", "Filesystem was not found.", None)
FILESYSTEM_IN_USE = ("filesystems/filesystem-in-use", "Filesystem is in use by one or more instances.",
                     "Terminate all instances that are using the filesystem before deleting it.")
FILESYSTEM_IN_WRONG_REGION = ("instance-operations/launch/file-system-in-wrong-region",
                              "The filesystem must be in the same region as the instance.",
                              "Choose a filesystem in the instance's region, or launch in the filesystem's region.")
FILESYSTEM_DUPLICATE = ("global/duplicate", "A filesystem with this name already exists.", None)
#: who created the stand-in's filesystems (Filesystem.created_by is a User)
STANDIN_USER = {"id": "3da5a70a57a7422ea8a7203f98b2198b", "email": "me@example.com", "status": "active"}
RULESET_IN_USE = ("firewall-rulesets/firewall-ruleset-in-use", "Firewall ruleset is in use by one or more instances.",
                  "Terminate all instances that are using the ruleset before deleting it.")


class Machine(Protocol):
    """What plays the instances (a fake GPU host): it can have a directory of this machine mounted at a path."""

    def mount(self, source: Path, path: str) -> None: ...

    def unmount(self, path: str) -> None: ...


@dataclass
class FilesystemRecord:
    """One filesystem as created; whether it is in use and how much it holds are worked out as it is read."""

    id: str
    name: str
    region: str
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def mount_point(self) -> str:
        """Lambda's default mount point (file_system_names); file_system_mounts may choose another."""
        return f"/lambda/nfs/{self.name}"


@dataclass
class InstanceRecord:
    """One instance: what the launch asked for (user data included, which reads never show) and its state."""

    id: str
    name: str | None
    type_name: str
    region: str
    ssh_key_names: list[str]
    tags: list[dict[str, str]]
    user_data: str | None
    firewall_rulesets: list[str] = field(default_factory=list)
    #: the filesystems mounted: id -> mount point
    mounts: dict[str, str] = field(default_factory=dict)
    status: str = "booting"
    polls: int = 0
    ip: str | None = None
    launched: float = field(default_factory=time.monotonic)

    def advance(self, state: LambdaState) -> None:
        """One read: a booting instance gets its address and comes up; a terminating one ends."""
        self.polls += 1
        if self.status == "booting":
            if state.assign_ip and self.polls >= state.ip_polls:
                self.ip = state.address
            if self.polls >= state.boot_polls and time.monotonic() - self.launched >= state.boot_seconds:
                self.status = "active"
        elif self.status == "terminating":
            self.status = "terminated"

    def view(self, state: LambdaState) -> dict[str, Any]:
        up = self.status == "active"
        blocked = {"available": False, "reason_code": "vm-has-not-launched" if self.status == "booting"
                   else "vm-is-terminating"}
        body: dict[str, Any] = {
            "id": self.id, "status": self.status, "ssh_key_names": list(self.ssh_key_names),
            "file_system_names": [state.filesystems[i].name for i in self.mounts if i in state.filesystems],
            "region": {"name": self.region, "description": state.regions[self.region]},
            "instance_type": state.instance_types[self.type_name],
            "actions": {name: {"available": True} if up else blocked
                        for name in ("migrate", "rebuild", "restart", "cold_reboot")}
            | {"terminate": {"available": self.status in ("booting", "active", "unhealthy")}},
            "tags": [dict(t) for t in self.tags],
        }
        if self.firewall_rulesets:
            body["firewall_rulesets"] = [{"id": i} for i in self.firewall_rulesets]
        if self.mounts:
            body["file_system_mounts"] = [{"file_system_id": i, "mount_point": m} for i, m in self.mounts.items()]
        if self.name is not None:
            body["name"] = self.name
        if self.ip is not None:
            body["ip"], body["hostname"] = self.ip, self.ip
        return body


@dataclass
class LambdaState:
    regions: dict[str, str] = field(default_factory=dict)  # name -> description
    instance_types: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> InstanceType
    capacity: dict[str, list[str]] = field(default_factory=dict)  # type name -> regions with capacity
    ssh_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> SSHKey
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    #: id -> FirewallRuleset as created (``instance_ids`` is filled in as it is read)
    firewall_rulesets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: reads before a new instance is active (and the least time it takes); the read its address appears
    boot_polls: int = 2
    boot_seconds: float = 0.0
    ip_polls: int = 2
    #: False: instances never get an address
    assign_ip: bool = True
    #: the public address handed out (a fake GPU host's 10.200.N.2 in end-to-end tests)
    address: str = "127.0.0.1"
    #: the next N launches fail with insufficient-capacity whatever the catalog says
    capacity_failures: int = 0
    #: an authorized_keys file (a fake GPU host's) that each launch's SSH key is appended to, as
    #: Lambda's cloud-init does on the real machine
    authorized_keys: str | None = None
    filesystems: dict[str, FilesystemRecord] = field(default_factory=dict)
    #: where each filesystem keeps its content (a directory per id); None: filesystems hold nothing
    filesystem_dir: Path | None = None
    #: the machine every instance runs on (a fake GPU host), which sees the filesystems mounted on it
    machine: Machine | None = None

    def filesystem_path(self, filesystem_id: str) -> Path | None:
        """The directory holding a filesystem's content, when filesystems hold any."""
        return self.filesystem_dir / filesystem_id if self.filesystem_dir is not None else None

    def in_use(self, filesystem_id: str) -> bool:
        return any(filesystem_id in r.mounts and r.status != "terminated" for r in self.instances.values())

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
            ("POST", "/api/v1/instance-operations/launch", self.launch),
            ("POST", "/api/v1/instance-operations/terminate", self.terminate),
            ("GET", "/api/v1/instances", self.list_instances),
            ("GET", "/api/v1/instances/{id}", self.get_instance),
            ("GET", "/api/v1/firewall-rulesets", self.list_firewall_rulesets),
            ("POST", "/api/v1/firewall-rulesets", self.create_firewall_ruleset),
            ("GET", "/api/v1/firewall-rulesets/{id}", self.get_firewall_ruleset),
            ("DELETE", "/api/v1/firewall-rulesets/{id}", self.delete_firewall_ruleset),
            ("GET", "/api/v1/file-systems", self.list_filesystems),
            ("POST", "/api/v1/filesystems", self.create_filesystem),
            ("DELETE", "/api/v1/filesystems/{id}", self.delete_filesystem),
        ]

    def error(self, status: int, detail: str) -> Reply:
        code, message, suggestion = _ERRORS.get(status, _ERRORS[500])
        # Lambda words auth, rate and server errors the same every time; say what was invalid or missing.
        body: dict[str, Any] = {"code": code, "message": detail if status in (400, 404) and detail else message}
        if suggestion:
            body["suggestion"] = suggestion
        return Reply(status, {"error": body})

    @staticmethod
    def coded_error(status: int, error: tuple[str, str, str | None]) -> Reply:
        """An error whose code the spec fixes for this operation (capacity, missing instance)."""
        code, message, suggestion = error
        body = {"code": code, "message": message} | ({"suggestion": suggestion} if suggestion else {})
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

    # -- instances --------------------------------------------------------------------------------------------

    def launch(self, req: Request) -> Reply:
        body, state = req.body, self.state
        type_name, region = body["instance_type_name"], body["region_name"]
        if type_name not in state.instance_types or region not in state.regions:
            return self.error(400, f"Unknown instance type {type_name!r} or region {region!r}.")
        if len(body["ssh_key_names"]) != 1:
            return self.error(400, "Exactly one SSH key must be specified.")
        known = {k["name"] for k in state.ssh_keys.values()}
        if body["ssh_key_names"][0] not in known:
            return self.coded_error(404, ("global/object-does-not-exist", "Specified SSH key does not exist.",
                                          "Add the SSH key first (POST /api/v1/ssh-keys)."))
        rulesets = [entry["id"] for entry in body.get("firewall_rulesets", [])]
        for ruleset_id in rulesets:
            if ruleset_id not in state.firewall_rulesets:
                return self.coded_error(404, RULESET_NOT_FOUND)
            if state.firewall_rulesets[ruleset_id]["region"]["name"] != region:
                return self.error(400, "The firewall rulesets must exist in the same region as the instance.")
        mounts = self.requested_mounts(body)
        if isinstance(mounts, Reply):
            return mounts
        if any(state.filesystems[i].region != region for i in mounts):
            return self.coded_error(400, FILESYSTEM_IN_WRONG_REGION)
        if region not in state.capacity.get(type_name, []) or state.capacity_failures > 0:
            state.capacity_failures = max(0, state.capacity_failures - 1)
            return self.coded_error(400, INSUFFICIENT_CAPACITY)
        record = InstanceRecord(id=uuid.uuid4().hex, name=body.get("name"), type_name=type_name, region=region,
                                ssh_key_names=list(body["ssh_key_names"]), tags=list(body.get("tags", [])),
                                user_data=body.get("user_data"), firewall_rulesets=rulesets, mounts=mounts)
        state.instances[record.id] = record
        self.attach(record)
        if state.authorized_keys:
            key = next(k["public_key"] for k in state.ssh_keys.values() if k["name"] == body["ssh_key_names"][0])
            with open(state.authorized_keys, "a", encoding="utf-8") as keys:
                keys.write(key.strip() + "\n")
        return Reply(200, {"data": {"instance_ids": [record.id]}})

    def terminate(self, req: Request) -> Reply:
        ids = req.body["instance_ids"]
        records = [self.state.instances.get(i) for i in ids]
        if not ids or any(r is None or r.status == "terminated" for r in records):
            return self.coded_error(404, INSTANCE_NOT_FOUND)
        for record in records:
            assert record is not None
            if record.status != "terminating":
                record.status, record.polls = "terminating", 0
                self.detach(record)
        return Reply(200, {"data": {"terminated_instances": [r.view(self.state) for r in records if r]}})

    def list_instances(self, req: Request) -> Reply:
        live = [r for r in self.state.instances.values() if r.status != "terminated"]
        for record in live:
            record.advance(self.state)
        return Reply(200, {"data": [r.view(self.state) for r in live if r.status != "terminated"]})

    def get_instance(self, req: Request) -> Reply:
        record = self.state.instances.get(req.params["id"])
        if record is None:
            return self.coded_error(404, INSTANCE_NOT_FOUND)
        record.advance(self.state)
        return Reply(200, {"data": record.view(self.state)})


    # -- firewall rulesets ------------------------------------------------------------------------------------

    def ruleset_view(self, ruleset_id: str) -> dict[str, Any]:
        users = [r.id for r in self.state.instances.values() if ruleset_id in r.firewall_rulesets
                 and r.status != "terminated"]
        return self.state.firewall_rulesets[ruleset_id] | {"instance_ids": users}

    def list_firewall_rulesets(self, req: Request) -> Reply:
        return Reply(200, {"data": [self.ruleset_view(i) for i in self.state.firewall_rulesets]})

    def create_firewall_ruleset(self, req: Request) -> Reply:
        body = req.body
        region = body["region"]
        if region not in self.state.regions:
            return self.error(400, f"Unknown region {region!r}.")
        if any(r.get("protocol") != "icmp" and "port_range" not in r for r in body["rules"]):
            return self.error(400, "A port range is required for tcp, udp and all.")
        ruleset_id = uuid.uuid4().hex
        self.state.firewall_rulesets[ruleset_id] = {
            "id": ruleset_id, "name": body["name"],
            "region": {"name": region, "description": self.state.regions[region]},
            "rules": [dict(r) for r in body["rules"]],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return Reply(200, {"data": self.ruleset_view(ruleset_id)})

    def get_firewall_ruleset(self, req: Request) -> Reply:
        if req.params["id"] not in self.state.firewall_rulesets:
            return self.coded_error(404, RULESET_NOT_FOUND)
        return Reply(200, {"data": self.ruleset_view(req.params["id"])})

    def delete_firewall_ruleset(self, req: Request) -> Reply:
        ruleset_id = req.params["id"]
        if ruleset_id not in self.state.firewall_rulesets:
            return self.coded_error(404, RULESET_NOT_FOUND)
        if self.ruleset_view(ruleset_id)["instance_ids"]:
            return self.coded_error(400, RULESET_IN_USE)
        del self.state.firewall_rulesets[ruleset_id]
        return Reply(200, {"data": {}})


    # -- filesystems ------------------------------------------------------------------------------------------

    def requested_mounts(self, body: dict[str, Any]) -> dict[str, str] | Reply:
        """id -> mount point of the filesystems a launch asks for (a mount entry wins over a name)."""
        by_name = {fs.name: fs for fs in self.state.filesystems.values()}
        mounts: dict[str, str] = {}
        for name in body.get("file_system_names", []):
            if name not in by_name:
                return self.coded_error(404, ("global/object-does-not-exist", f"Filesystem {name!r} does not exist.",
                                              "Check the filesystem's name and try again."))
            mounts[by_name[name].id] = by_name[name].mount_point
        for entry in body.get("file_system_mounts", []):
            if entry["file_system_id"] not in self.state.filesystems:
                return self.coded_error(404, ("global/object-does-not-exist", "Filesystem does not exist.",
                                              "Check the filesystem's ID and try again."))
            mounts[entry["file_system_id"]] = entry["mount_point"]
        return mounts

    def attach(self, record: InstanceRecord) -> None:
        """What the instance's machine sees: each filesystem's directory at its mount point."""
        for filesystem_id, mount_point in record.mounts.items():
            source = self.state.filesystem_path(filesystem_id)
            if self.state.machine is not None and source is not None:
                self.state.machine.mount(source, mount_point)

    def detach(self, record: InstanceRecord) -> None:
        if self.state.machine is None or self.state.filesystem_dir is None:
            return
        for mount_point in record.mounts.values():
            self.state.machine.unmount(mount_point)

    def filesystem_view(self, fs: FilesystemRecord) -> dict[str, Any]:
        path = self.state.filesystem_path(fs.id)
        used = sum(_file_size(os.path.join(root, name)) for root, _, names in os.walk(path)
                   for name in names) if path is not None else 0
        return {"id": fs.id, "name": fs.name, "mount_point": fs.mount_point, "created": fs.created,
                "created_by": dict(STANDIN_USER), "is_in_use": self.state.in_use(fs.id),
                "region": {"name": fs.region, "description": self.state.regions[fs.region]}, "bytes_used": used}

    def list_filesystems(self, req: Request) -> Reply:
        return Reply(200, {"data": [self.filesystem_view(fs) for fs in self.state.filesystems.values()]})

    def create_filesystem(self, req: Request) -> Reply:
        name, region = req.body["name"], req.body["region"]
        if region not in self.state.regions:
            return self.error(400, f"Unknown region {region!r}.")
        if any(fs.name == name for fs in self.state.filesystems.values()):
            return self.coded_error(400, FILESYSTEM_DUPLICATE)
        fs = FilesystemRecord(id=uuid.uuid4().hex, name=name, region=region)
        path = self.state.filesystem_path(fs.id)
        if path is not None:
            path.mkdir(mode=0o755, parents=True)
        self.state.filesystems[fs.id] = fs
        return Reply(200, {"data": self.filesystem_view(fs)})

    def delete_filesystem(self, req: Request) -> Reply:
        fs = self.state.filesystems.get(req.params["id"])
        if fs is None:
            return self.coded_error(404, FILESYSTEM_NOT_FOUND)
        if self.state.in_use(fs.id):
            return self.coded_error(400, FILESYSTEM_IN_USE)
        del self.state.filesystems[fs.id]
        path = self.state.filesystem_path(fs.id)
        if path is not None:
            shutil.rmtree(path)
        return Reply(200, {"data": {"deleted_ids": [fs.id]}})


def _file_size(path: str) -> int:
    """A regular file's size; links (the hub cache's snapshots) take no room of their own."""
    info = os.lstat(path)
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


if __name__ == "__main__":
    serve_main(LambdaStandin)
