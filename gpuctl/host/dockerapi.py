"""docker-py's ``APIClient`` over gpuctl's own connection to a host.

Locally the client talks to the daemon's unix socket. Everywhere else (a remote host, or a local
docker that needs ``sudo -n``) each HTTP connection is a ``[sudo -n] docker system dial-stdio``
started through the host's :class:`gpuctl.host.shell.Shell`: on a remote host that is an exec channel
of the SSH connection gpuctl already holds, with its pinned host key, so docker-py never opens a
connection of its own nor reads ``~/.ssh``.

Only this module imports ``docker`` (and urllib3/requests through it); it is imported on first use.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlparse

import docker
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from gpuctl.host.errors import HostError
from gpuctl.host.shell import Dialer, LocalShell, Shell

#: the oldest engine API gpuctl speaks (docker 20.10); newer daemons answer it too
MIN_API_VERSION = "1.41"
DEFAULT_SOCKET = "/var/run/docker.sock"
REQUEST_TIMEOUT_S = 120
DIAL_STDIO = ("docker", "system", "dial-stdio")
Reason = Literal["missing", "denied", "down"]


class DockerUnavailable(HostError):
    """docker does not answer on a host: not installed, not allowed for the login user, or its daemon is down."""

    def __init__(self, message: str, reason: Reason, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason


class UnixDialer:
    """Streams to a local unix socket (the daemon's own), without any process in between."""

    ssh_channels = False

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self, timeout: float | None) -> Any:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def failure(self) -> str | None:
        return None

    def close(self) -> None:
        pass


def dialer_for(shell: Shell, sudo: bool) -> Dialer:
    """How to reach the docker engine of ``shell``'s host."""
    if isinstance(shell, LocalShell) and not sudo:
        docker_host = shell.env.get("DOCKER_HOST", "")
        if not docker_host or docker_host.startswith("unix://"):
            return UnixDialer(urlparse(docker_host).path if docker_host else DEFAULT_SOCKET)
    return shell.dial(["sudo", "-n", *DIAL_STDIO] if sudo else list(DIAL_STDIO))


class _StreamConnection(urllib3.connection.HTTPConnection):
    def __init__(self, dialer: Dialer, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._dialer = dialer

    def connect(self) -> None:
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        self.sock = self._dialer.open(timeout)


class _StreamPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, dialer: Dialer, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._dialer = dialer

    def _new_conn(self) -> _StreamConnection:
        connect = self.timeout.connect_timeout if isinstance(self.timeout, urllib3.util.Timeout) else self.timeout
        return _StreamConnection(self._dialer, connect if isinstance(connect, (int, float)) else None)


class _StreamAdapter(BaseHTTPAdapter):
    """requests' adapter for every URL of the client: one pool of dialed streams."""

    def __init__(self, dialer: Dialer, timeout: float, maxsize: int = 10) -> None:
        self.dialer = dialer
        self.pool = _StreamPool(dialer, timeout, maxsize)
        super().__init__()

    def get_connection(self, url: Any, proxies: Any = None) -> _StreamPool:
        return self.pool

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)

    def close(self) -> None:
        super().close()
        self.pool.close()
        self.dialer.close()


def open_client(shell: Shell, *, sudo: bool = False, timeout: float = REQUEST_TIMEOUT_S) -> docker.APIClient:
    """An APIClient for the host of ``shell``, speaking the newest API version both sides know.

    Raises DockerUnavailable when the engine cannot be reached (reason: missing, denied or down).
    """
    dialer = dialer_for(shell, sudo)
    client = docker.APIClient(version=MIN_API_VERSION, timeout=timeout)
    if not isinstance(shell, LocalShell):
        # a remote daemon must never receive this machine's registry logins or proxy settings
        from docker.auth import AuthConfig
        from docker.utils.proxy import ProxyConfig

        client._auth_configs = AuthConfig({})
        client._proxy_configs = ProxyConfig()
        client._general_configs = {}
    adapter = _StreamAdapter(dialer, timeout)
    client._custom_adapter = adapter
    client.mount("http+docker://", adapter)
    # docker-py finds a hijacked (attach) stream's socket by the URL: a paramiko channel under 'ssh'
    client.base_url = "http+docker://ssh" if dialer.ssh_channels else "http+docker://localhost"
    try:
        server = client.version(api_version=False)
    except Exception as exc:
        client.close()
        raise unavailable(exc, dialer.failure(), shell.where, sudo) from exc
    client._version = _newest_common(str(server.get("ApiVersion", MIN_API_VERSION)))
    return client


def _newest_common(server: str) -> str:
    from docker.constants import DEFAULT_DOCKER_API_VERSION
    from docker.utils import version_lt

    return server if version_lt(server, DEFAULT_DOCKER_API_VERSION) else DEFAULT_DOCKER_API_VERSION


def unavailable(exc: BaseException, failure: str | None, where: str, sudo: bool) -> DockerUnavailable:
    """The DockerUnavailable for a failed first request: why the dial command (or socket) failed."""
    detail = failure or _describe(exc)
    text = detail.lower()
    refused_sudo = ("password is required", "sudoers", "not allowed", "sudo: not found", "sudo: command not found")
    if sudo and any(words in text for words in refused_sudo):
        return DockerUnavailable(f"'sudo -n docker' is refused on {where} ({detail})", "denied")
    if text.startswith("exit 127") or "command not found" in text or ": not found" in text:
        return DockerUnavailable(f"docker is not installed on {where} ({detail})", "missing")
    if "permission denied" in text:
        return DockerUnavailable(f"the login user may not use docker on {where} ({detail})", "denied")
    if isinstance(exc, FileNotFoundError) or "no such file" in text:
        return DockerUnavailable(f"no docker daemon socket on {where} ({detail})", "down")
    return DockerUnavailable(f"the docker daemon on {where} does not answer ({detail})", "down")


def _describe(exc: BaseException) -> str:
    inner: BaseException = exc
    while True:  # requests and urllib3 wrap the socket's error twice; the innermost says what happened
        nested = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        reason = getattr(inner, "reason", None)
        following = nested or (reason if isinstance(reason, BaseException) else None) or inner.__cause__
        if following is None or following is inner:
            break
        inner = following
    text = str(inner) or type(inner).__name__
    return text if len(text) < 300 else text[:300] + "..."


def describe(exc: BaseException) -> str:
    """One line for a failed API call: the daemon's explanation, or the transport's innermost error."""
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return _describe(exc)


#: what a failed call of the client may raise, besides its own APIError
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError, EOFError,
    docker.errors.DockerException,
)
