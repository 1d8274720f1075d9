"""A small client for Tiny Cloud's REST API, and its answers as typed models.

Every failure becomes the gpuctl error that says what happened, so gpuctl can act on it: a refused
key is ``CredentialsError`` (exit 6), an unknown machine ``NotFoundError``, no stock
``NoCapacityError`` (gpuctl tries the next offer), a slow API ``TimeoutError_``, the rest
``ProviderError``. httpx is imported inside the client, so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from gpuctl.config import ConfigKey
from gpuctl.credentials import credential_value
from gpuctl.errors import CredentialsError, NoCapacityError, NotFoundError, ProviderError, TimeoutError_

API_KEY = ConfigKey("tinycloud.api_key", "Tiny Cloud API key", secret=True, env="TINYCLOUD_API_KEY",
                    credential=True)
API_URL = ConfigKey("tinycloud.api_url", "Tiny Cloud API address (default https://api.tinycloud.example)",
                    env="TINYCLOUD_API_URL")
DEFAULT_URL = "https://api.tinycloud.example"
KEY_HINT = "export TINYCLOUD_API_KEY=... or gpuctl config set tinycloud.api_key VALUE"


class MachineType(BaseModel):
    name: str
    gpu: str
    gpus: int
    usd_per_hour: float
    zone: str
    in_stock: bool


class Machine(BaseModel):
    id: str
    name: str
    type: str
    gpu: str
    gpus: int
    zone: str
    state: str  # starting, running
    ip: str | None = None
    ssh_port: int = 22
    ssh_user: str = "root"
    labels: dict[str, str] = {}
    usd_per_hour: float


class TinyCloud:
    """One API session; ``timeout`` bounds each request (gpuctl lowers it for one command)."""

    def __init__(self, timeout: float) -> None:
        key = credential_value(API_KEY)
        if not key:
            raise CredentialsError("Tiny Cloud API key is not set", KEY_HINT)
        self.url = credential_value(API_URL) or DEFAULT_URL
        self._key = key
        self._timeout = timeout
        #: the Date header of the last answer (``gpuctl doctor`` compares the clock with it)
        self.last_date: str | None = None

    def machine_types(self) -> list[MachineType]:
        return _parse(list[MachineType], self._call("GET", "/v1/machine-types").get("types"))

    def create(self, body: dict[str, Any]) -> Machine:
        return _parse(Machine, self._call("POST", "/v1/machines", json=body))

    def machine(self, machine_id: str) -> Machine:
        return _parse(Machine, self._call("GET", f"/v1/machines/{machine_id}"))

    def machines(self, labels: dict[str, str]) -> list[Machine]:
        params = [("label", f"{key}:{value}") for key, value in sorted(labels.items())]
        return _parse(list[Machine], self._call("GET", "/v1/machines", params=params).get("machines"))

    def delete(self, machine_id: str) -> None:
        self._call("DELETE", f"/v1/machines/{machine_id}")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = httpx.request(method, self.url.rstrip("/") + path, timeout=self._timeout,
                                     headers={"Authorization": f"Bearer {self._key}"}, **kwargs)
        except httpx.TimeoutException:
            raise TimeoutError_(f"Tiny Cloud did not answer {method} {path} within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach Tiny Cloud at {self.url}: {exc}",
                                "check the network, or the tinycloud.api_url setting") from None
        if response.status_code in (401, 403):
            raise CredentialsError(f"Tiny Cloud refused the API key (HTTP {response.status_code})", KEY_HINT)
        if response.status_code == 404:
            raise NotFoundError(f"Tiny Cloud has no {path.rsplit('/', 1)[-1]}", "it may have been deleted")
        if response.status_code == 409:
            raise NoCapacityError(f"Tiny Cloud is out of stock: {self._reason(response)}")
        if response.status_code >= 400:
            raise ProviderError(f"Tiny Cloud API failed on {method} {path}: HTTP {response.status_code} "
                                f"{self._reason(response)}")
        self.last_date = response.headers.get("date")
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise ProviderError(f"Tiny Cloud sent invalid JSON for {method} {path}") from None

    @staticmethod
    def _reason(response: Any) -> str:
        try:
            return str(response.json().get("error", ""))
        except (ValueError, AttributeError):
            return ""


def _parse(model: Any, data: Any) -> Any:
    """``data`` as ``model``; an answer that does not match is the API's fault, said so."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise ProviderError(f"Tiny Cloud sent an unexpected answer ({exc.error_count()} problem(s))",
                            "the API may have changed; upgrade gpuctl-tinycloud") from None
