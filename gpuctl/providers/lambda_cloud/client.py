"""Lambda Cloud API v1: the response shapes gpuctl reads, and a typed client (lambda_cloud_openapi.json).

Every answer is wrapped as ``{"data": ...}`` and every error as
``{"error": {"code", "message", "suggestion"?}}``; only the fields gpuctl uses are modelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuctl.envvars import Env
from gpuctl.providers.http import ErrorInfo, JsonApiClient
from gpuctl.providers.lambda_cloud.settings import API_KEY

#: the spec's first ``servers`` entry (cloud.lambdalabs.com is deprecated); paths start ``/api/v1``
DEFAULT_BASE_URL = "https://cloud.lambda.ai"

T = TypeVar("T")

InstanceStatus = Literal["booting", "active", "unhealthy", "terminated", "terminating", "preempted"]
#: error codes gpuctl branches on (Lambda's own; messages are for people)
INSUFFICIENT_CAPACITY = "instance-operations/launch/insufficient-capacity"
QUOTA_EXCEEDED = "global/quota-exceeded"
DUPLICATE = "global/duplicate"
FILESYSTEM_IN_USE = "filesystems/filesystem-in-use"
FILESYSTEM_IN_WRONG_REGION = "instance-operations/launch/file-system-in-wrong-region"
#: Lambda allows one launch per 12 s; a launch may also take a while to answer
LAUNCH_TIMEOUT = 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Model, Generic[T]):
    """The ``{"data": ...}`` wrapper of every successful answer."""

    data: T


class InstanceTypeSpecs(_Model):
    vcpus: int = Field(ge=0)
    memory_gib: int = Field(ge=0)
    storage_gib: int = Field(ge=0)
    gpus: int = Field(ge=0)


class InstanceType(_Model):
    name: str
    description: str
    gpu_description: str
    #: the whole instance, not one GPU
    price_cents_per_hour: int = Field(ge=0)
    specs: InstanceTypeSpecs


class Region(_Model):
    name: str
    description: str


class InstanceTypesItem(_Model):
    instance_type: InstanceType
    #: empty when the type is sold out everywhere
    regions_with_capacity_available: list[Region]


class TagEntry(_Model):
    key: str
    value: str


class FirewallRulesetEntry(_Model):
    id: str


class Instance(_Model):
    """One instance of ``GET /api/v1/instances[/{id}]``."""

    id: str
    name: str | None = None
    #: public IPv4; absent while the instance boots
    ip: str | None = None
    status: InstanceStatus
    region: Region
    instance_type: InstanceType
    tags: list[TagEntry] = Field(default_factory=list)
    firewall_rulesets: list[FirewallRulesetEntry] = Field(default_factory=list)


class FirewallRuleset(_Model):
    """One ruleset of ``/api/v1/firewall-rulesets`` (its rules are not read back)."""

    id: str
    name: str
    region: Region
    #: the instances it is attached to; Lambda refuses to delete it while any is not terminated
    instance_ids: list[str] = Field(default_factory=list)


class Filesystem(_Model):
    """One filesystem of ``GET /api/v1/file-systems``: network storage in one region that outlives instances."""

    id: str
    name: str
    #: where an instance launched with ``file_system_names`` sees it (``file_system_mounts`` may choose another)
    mount_point: str
    created: datetime
    #: mounted on an instance that has not terminated; Lambda refuses to delete it then
    is_in_use: bool
    region: Region
    #: an estimate Lambda updates every few hours
    bytes_used: int | None = Field(default=None, ge=0)


class FilesystemDeleted(_Model):
    deleted_ids: list[str]


class SSHKey(_Model):
    id: str
    name: str
    public_key: str


class LaunchResponse(_Model):
    instance_ids: list[str]


class ApiError(_Model):
    code: str
    message: str
    suggestion: str | None = None


class ErrorEnvelope(_Model):
    error: ApiError


class LambdaApi(JsonApiClient):
    """Lambda Cloud API v1 (``Authorization: Bearer``); endpoints are added here as gpuctl needs them."""

    provider = "Lambda Cloud"
    api_prefix = "/api/v1"
    credential = API_KEY
    default_base_url = DEFAULT_BASE_URL
    base_url_env = Env.LAMBDA_API_URL

    def describe_error(self, status: int, payload: Any) -> ErrorInfo | None:
        try:
            error = ErrorEnvelope.model_validate(payload).error
        except ValidationError:
            return None
        return ErrorInfo(status=status, message=error.message, code=error.code, suggestion=error.suggestion)

    def list_instance_types(self) -> dict[str, Any]:
        """Every instance type Lambda offers, keyed by name, with the regions that have capacity now; each entry
        unchecked (``mapping.instance_types_items`` reads them one by one)."""
        return self.get("/instance-types", Envelope[dict[str, Any]]).data

    def list_ssh_keys(self) -> list[SSHKey]:
        return self.get("/ssh-keys", Envelope[list[SSHKey]]).data

    def add_ssh_key(self, name: str, public_key: str) -> SSHKey:
        answer = self.request("POST", "/ssh-keys", json_body={"name": name, "public_key": public_key})
        return self.parse(Envelope[SSHKey], answer, "answer to POST /ssh-keys").data

    def launch(self, body: dict[str, Any]) -> list[str]:
        """``POST /instance-operations/launch``, sent once (a 5xx may still have launched); the new ids."""
        answer = self.request("POST", "/instance-operations/launch", json_body=body,
                              timeout=max(self.timeout, LAUNCH_TIMEOUT))
        return self.parse(Envelope[LaunchResponse], answer, "answer to the launch").data.instance_ids

    def list_instances(self) -> list[Instance]:
        """The account's instances that have not ended."""
        return self.get("/instances", Envelope[list[Instance]]).data

    def get_instance(self, instance_id: str) -> Instance:
        return self.get(f"/instances/{quote(instance_id, safe='')}", Envelope[Instance]).data

    def terminate(self, instance_ids: list[str]) -> None:
        """Terminate instances; repeating it is harmless, so it is retried like a read."""
        self.request("POST", "/instance-operations/terminate", json_body={"instance_ids": instance_ids},
                     idempotent=True)

    def list_firewall_rulesets(self) -> list[FirewallRuleset]:
        return self.get("/firewall-rulesets", Envelope[list[FirewallRuleset]]).data

    def create_firewall_ruleset(self, name: str, region: str, rules: list[dict[str, Any]]) -> FirewallRuleset:
        """``POST /firewall-rulesets``: a ruleset of its own, never the account-wide rules (``PUT /firewall-rules``)."""
        answer = self.request("POST", "/firewall-rulesets", json_body={"name": name, "region": region, "rules": rules})
        return self.parse(Envelope[FirewallRuleset], answer, "answer to POST /firewall-rulesets").data

    def delete_firewall_ruleset(self, ruleset_id: str) -> None:
        self.request("DELETE", f"/firewall-rulesets/{quote(ruleset_id, safe='')}")

    def list_filesystems(self) -> list[Filesystem]:
        """The account's filesystems, every region (note the path's hyphen: create and delete have none)."""
        return self.get("/file-systems", Envelope[list[Filesystem]]).data

    def create_filesystem(self, name: str, region: str) -> Filesystem:
        """``POST /filesystems``: an empty filesystem in ``region`` (no size: it grows as it is written)."""
        answer = self.request("POST", "/filesystems", json_body={"name": name, "region": region})
        return self.parse(Envelope[Filesystem], answer, "answer to POST /filesystems").data

    def delete_filesystem(self, filesystem_id: str) -> None:
        """``DELETE /filesystems/{id}``; refused (``filesystems/filesystem-in-use``) while an instance mounts it."""
        answer = self.request("DELETE", f"/filesystems/{quote(filesystem_id, safe='')}")
        self.parse(Envelope[FilesystemDeleted], answer, "answer to DELETE /filesystems")
