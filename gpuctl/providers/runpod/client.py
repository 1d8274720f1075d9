"""RunPod REST v2: the response shapes gpuctl reads, and a typed client (contract: runpod_rest_v2.json).

Only the fields gpuctl uses are modelled; unknown fields are ignored so additions upstream do
not break us, while a missing or mistyped field we rely on is reported as a ProviderError.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpuctl.envvars import Env
from gpuctl.providers.http import ErrorInfo, JsonApiClient
from gpuctl.providers.runpod.settings import API_KEY

#: the spec's ``servers`` entry; endpoint paths start with ``/v2``
DEFAULT_BASE_URL = "https://api.runpod.io"

AvailabilityLevel = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
Cloud = Literal["SECURE", "COMMUNITY"]
PodStatus = Literal["PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED"]

#: pod environment variable holding gpuctl's tags as JSON: v2 pods have no tags or labels, but their
#: environment is stored with them and returned by every read
TAGS_ENV = "GPUCTL_TAGS"
#: creating a pod may take the API a while (it places the pod before answering)
CREATE_TIMEOUT = 60.0
#: the most log lines the API backfills (``tail``)
MAX_LOG_LINES = 5000
#: a log stream quiet this long has sent its backfill (the stream itself stays open for new lines)
LOG_IDLE_S = 1.0


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class GpuPrice(_Model):
    """List price in USD per hour for one GPU, per cloud; the real API sends null for a cloud without one."""

    secure: float | None = Field(ge=0)
    community: float | None = Field(ge=0)
    serverless: float | None = None


class GpuMaxCount(_Model):
    """The most GPUs of this type one pod can have, per cloud (a ceiling, not stock)."""

    secure: int = Field(ge=0)
    community: int = Field(ge=0)


class DataCenterAvailability(_Model):
    id: str
    name: str
    availability: AvailabilityLevel


class GpuType(_Model):
    """One entry of ``GET /v2/catalog/gpus``."""

    id: str
    name: str | None = None
    memory: int | None = Field(default=None, ge=0, description="VRAM in GB")
    secure: bool
    community: bool
    price: GpuPrice
    max_count: GpuMaxCount = Field(alias="maxCount")
    #: present only with include=AVAILABILITY
    availability: AvailabilityLevel | None = None
    #: per-datacenter stock; omitted when the configuration is unavailable everywhere
    data_centers: list[DataCenterAvailability] | None = Field(default=None, alias="dataCenters")


class ListGpuTypesResponse(_Model):
    """``GET /v2/catalog/gpus``; each entry is read on its own (``mapping.gpu_types``), so one bad entry costs
    only itself."""

    gpus: list[Any]


class PodSshEndpoint(_Model):
    host: str
    port: int
    username: str


class PodSsh(_Model):
    """``proxy``: RunPod's shell-only SSH proxy; ``direct``: the pod's own sshd on a public port."""

    proxy: PodSshEndpoint | None = None
    direct: PodSshEndpoint | None = None


class PodGpu(_Model):
    id: str
    count: int = Field(default=1, ge=1)


class PodCpu(_Model):
    id: str
    vcpu_count: int = Field(alias="vcpuCount", ge=1)


class NetworkMount(_Model):
    volume_id: str = Field(alias="volumeId")
    path: str


class PodMounts(_Model):
    network: list[NetworkMount] = Field(default_factory=list)


class Pod(_Model):
    """One pod of ``GET /v2/pods[/{id}]``."""

    id: str
    name: str
    status: PodStatus
    ports: list[str] = Field(default_factory=list)
    #: only gpuctl's own variable is kept: the rest of a pod's environment holds its secrets
    env: dict[str, str] = Field(default_factory=dict)
    #: GPU pods have ``gpu``, CPU pods ``cpu``
    gpu: PodGpu | None = None
    cpu: PodCpu | None = None
    mounts: PodMounts = Field(default_factory=PodMounts)
    cloud: Cloud | None = None
    data_center_id: str | None = Field(default=None, alias="dataCenterId")
    ssh: PodSsh | None = None
    #: USD per hour now (0 once stopped)
    cost: float = Field(default=0.0, ge=0)
    created_at: datetime | None = Field(default=None, alias="createdAt")

    @field_validator("env", mode="before")
    @classmethod
    def _gpuctl_variables_only(cls, value: Any) -> Any:
        return {TAGS_ENV: value[TAGS_ENV]} if isinstance(value, dict) and TAGS_ENV in value else {}

    @property
    def tags(self) -> dict[str, str]:
        """gpuctl's tags of this pod; empty for pods gpuctl did not create."""
        try:
            tags = json.loads(self.env.get(TAGS_ENV, "{}"))
        except json.JSONDecodeError:
            return {}
        if not isinstance(tags, dict):
            return {}
        return {str(k): str(v) for k, v in tags.items()}


class ListPodsResponse(_Model):
    pods: list[Pod]


class NetworkVolume(_Model):
    """One network volume: storage in one data center that pods there can mount (``/v2/network-volumes``)."""

    id: str
    name: str
    size: int = Field(ge=1, description="GB")
    data_center: str = Field(alias="dataCenter")


class ListNetworkVolumesResponse(_Model):
    network_volumes: list[NetworkVolume] = Field(alias="networkVolumes")


class CpuVcpu(_Model):
    min: int
    max: int


class CpuPrice(_Model):
    secure_per_vcpu: float = Field(alias="securePerVcpu", ge=0)


class CpuType(_Model):
    """One CPU flavor of ``GET /v2/catalog/cpus`` (with include=AVAILABILITY: where it is free)."""

    id: str
    vcpu: CpuVcpu
    price: CpuPrice
    data_centers: list[DataCenterAvailability] | None = Field(default=None, alias="dataCenters")


class ListCpuTypesResponse(_Model):
    cpus: list[CpuType]


class LogEvent(_Model):
    """One event of a pod's log stream: its id (the resume cursor) and the line."""

    id: str | None
    line: str


class Problem(_Model):
    """RunPod's ``application/problem+json`` error body."""

    title: str | None = None
    status: int | None = None
    detail: str | None = None
    errors: list[str] | None = None


def _log_line(data: str) -> str:
    """The text of one log event (``{"ts", "source", "line"}``); the raw data if it is not that."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        return data.strip()
    return str(event.get("line", "")) if isinstance(event, dict) else data.strip()


class RunPodApi(JsonApiClient):
    """RunPod REST v2 (``Authorization: Bearer``); endpoints are added here as gpuctl needs them."""

    provider = "RunPod"
    api_prefix = "/v2"
    credential = API_KEY
    default_base_url = DEFAULT_BASE_URL
    base_url_env = Env.RUNPOD_API_URL

    def describe_error(self, status: int, payload: Any) -> ErrorInfo | None:
        try:
            problem = Problem.model_validate(payload)
        except ValidationError:
            return None
        parts = [p for p in (problem.title, problem.detail) if p]
        if problem.errors:
            parts.append("; ".join(problem.errors[:3]))
        return ErrorInfo(status=status, message=": ".join(parts)) if parts else None

    def list_gpu_types(self, *, cloud: Cloud, count: int = 1, min_cuda_version: str | None = None) -> list[Any]:
        """The GPU catalog's entries (unchecked) with pod availability for ``count`` GPUs in ``cloud``, on machines
        whose CUDA is at least ``min_cuda_version`` when given.

        Availability depends on the cloud (the API defaults to SECURE) and the count, so each
        tier is asked separately rather than assuming one answer fits both.
        """
        params: dict[str, Any] = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud, "count": count}
        if min_cuda_version is not None:
            params["minCudaVersion"] = min_cuda_version
        return self.get("/catalog/gpus", ListGpuTypesResponse, params=params).gpus

    def create_pod(self, body: dict[str, Any]) -> Pod:
        """``POST /v2/pods``: sent once (never retried after it reached the API); 201 is the new pod."""
        answer = self.request("POST", "/pods", json_body=body, timeout=max(self.timeout, CREATE_TIMEOUT))
        return self.parse(Pod, answer, "answer to POST /pods")

    def get_pod(self, pod_id: str) -> Pod:
        return self.get(f"/pods/{quote(pod_id, safe='')}", Pod)

    def list_pods(self) -> list[Pod]:
        """Every pod of the account (terminated pods are no longer listed)."""
        return self.get("/pods", ListPodsResponse).pods

    def delete_pod(self, pod_id: str) -> None:
        """``DELETE /v2/pods/{id}``: terminates the pod for good (NotFoundError when it is gone)."""
        self.request("DELETE", f"/pods/{quote(pod_id, safe='')}")

    def pod_log_lines(self, pod_id: str, tail: int) -> list[str]:
        """The container's last ``tail`` log lines."""
        return [event.line for event in self.pod_log_events(pod_id, tail)]

    def pod_log_events(self, pod_id: str, tail: int, *, after: str | None = None) -> list[LogEvent]:
        """The container's last ``tail`` log events; with ``after`` (an event id) the API may send only later ones.

        ``GET /v2/pods/{id}/logs`` is a Server-Sent Events stream: the backfill, then new lines as they
        come. It is read until ``tail`` events arrived, it ends, or it stays quiet for ``LOG_IDLE_S``.
        """
        import httpx

        path = f"/pods/{quote(pod_id, safe='')}/logs"
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": after} if after else {})}
        events: list[LogEvent] = []
        event_id: str | None = None
        try:
            with self._http().stream("GET", path, params={"source": "container", "tail": tail}, headers=headers,
                                     timeout=httpx.Timeout(self.timeout, read=LOG_IDLE_S)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self.exception_for(self._error_info(response), "GET", path)
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("data:"):
                        events.append(LogEvent(id=event_id, line=_log_line(line[5:])))
                        event_id = None
                    if len(events) >= tail:
                        break
        except httpx.ReadTimeout:
            pass  # quiet: the backfill is over
        except httpx.TimeoutException:
            raise self._timeout_error("GET", path, self.timeout) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "GET", path) from None
        return events

    # -- network volumes --------------------------------------------------------------------------

    def list_network_volumes(self) -> list[NetworkVolume]:
        return self.get("/network-volumes", ListNetworkVolumesResponse).network_volumes

    def create_network_volume(self, name: str, data_center: str, size_gb: int) -> NetworkVolume:
        """``POST /v2/network-volumes``: sent once (a second create would make, and bill, a second volume)."""
        answer = self.request("POST", "/network-volumes",
                              json_body={"name": name, "dataCenter": data_center, "size": size_gb})
        return self.parse(NetworkVolume, answer, "answer to POST /network-volumes")

    def resize_network_volume(self, volume_id: str, size_gb: int) -> NetworkVolume:
        """``PATCH`` the size (upwards only); setting the same size twice is harmless, so it is retried."""
        path = f"/network-volumes/{quote(volume_id, safe='')}"
        answer = self.request("PATCH", path, json_body={"size": size_gb}, idempotent=True)
        return self.parse(NetworkVolume, answer, f"answer to PATCH {path}")

    def delete_network_volume(self, volume_id: str) -> None:
        """``DELETE /v2/network-volumes/{id}``: the volume and its files (NotFoundError when it is gone)."""
        self.request("DELETE", f"/network-volumes/{quote(volume_id, safe='')}")

    def list_cpu_types(self, *, vcpu_count: int) -> list[CpuType]:
        """CPU flavors with pod availability for ``vcpu_count`` vCPUs, per data center."""
        params = {"include": "AVAILABILITY", "product": "POD", "vcpuCount": vcpu_count}
        return self.get("/catalog/cpus", ListCpuTypesResponse, params=params).cpus

