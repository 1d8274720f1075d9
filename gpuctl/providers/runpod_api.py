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
    """List price in USD per hour for one GPU, per cloud."""

    secure: float = Field(ge=0)
    community: float = Field(ge=0)
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
    name: str
    memory: int = Field(ge=0, description="VRAM in GB")
    secure: bool
    community: bool
    price: GpuPrice
    max_count: GpuMaxCount = Field(alias="maxCount")
    #: present only with include=AVAILABILITY
    availability: AvailabilityLevel | None = None
    #: per-datacenter stock; omitted when the configuration is unavailable everywhere
    data_centers: list[DataCenterAvailability] | None = Field(default=None, alias="dataCenters")


class ListGpuTypesResponse(_Model):
    gpus: list[GpuType]


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


class Pod(_Model):
    """One pod of ``GET /v2/pods[/{id}]``."""

    id: str
    name: str
    status: PodStatus
    ports: list[str] = Field(default_factory=list)
    #: only gpuctl's own variable is kept: the rest of a pod's environment holds its secrets
    env: dict[str, str] = Field(default_factory=dict)
    gpu: PodGpu | None = None
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
    credential_key = "runpod.api_key"
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

    def list_gpu_types(self, *, cloud: Cloud, count: int = 1) -> ListGpuTypesResponse:
        """The GPU catalog with pod availability for ``count`` GPUs in ``cloud``.

        Availability depends on the cloud (the API defaults to SECURE) and the count, so each
        tier is asked separately rather than assuming one answer fits both.
        """
        params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud, "count": count}
        return self.get("/catalog/gpus", ListGpuTypesResponse, params=params)

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
        """The container's last ``tail`` log lines.

        ``GET /v2/pods/{id}/logs`` is a Server-Sent Events stream: the backfill, then new lines as they
        come. It is read until ``tail`` lines arrived, it ends, or it stays quiet for ``LOG_IDLE_S``.
        """
        import httpx

        path = f"/pods/{quote(pod_id, safe='')}/logs"
        lines: list[str] = []
        try:
            with self._http().stream("GET", path, params={"source": "container", "tail": tail},
                                     headers={"Accept": "text/event-stream"},
                                     timeout=httpx.Timeout(self.timeout, read=LOG_IDLE_S)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self.exception_for(self._error_info(response), "GET", path)
                for line in response.iter_lines():
                    if line.startswith("data:") and len(lines) < tail:
                        lines.append(_log_line(line[5:]))
                    if len(lines) >= tail:
                        break
        except httpx.ReadTimeout:
            pass  # quiet: the backfill is over
        except httpx.TimeoutException:
            raise self._timeout_error("GET", path, self.timeout) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "GET", path) from None
        return lines

