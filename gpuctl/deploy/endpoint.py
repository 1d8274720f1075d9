"""Where a deployment's engine answers, and how this process reaches it right now."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def openai_base(endpoint: str) -> str:
    """The OpenAI-style base URL of an engine endpoint (``.../v1``)."""
    return endpoint.rstrip("/") + "/v1"


@contextmanager
def reach(deployment: Deployment, shell: Shell | None) -> Iterator[str]:
    """A base URL usable from here: the endpoint, or an SSH tunnel to the host's loopback for a private one."""
    if deployment.tunnel:
        if shell is None or not hasattr(shell, "forward") or deployment.host_port is None:
            raise ValueError("a private endpoint is reached through an SSH session")
        with shell.forward(deployment.host_port) as port:
            yield http_url("127.0.0.1", port)
        return
    if not deployment.endpoint:
        raise ValueError(f"deployment {deployment.name} has no endpoint")
    yield deployment.endpoint
