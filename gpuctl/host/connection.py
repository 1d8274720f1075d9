"""One host for the length of a command: one shell (one SSH session) and its docker engine, closed once.

``gpuctl up --host`` reads the host's GPUs to make its offer before anything is confirmed, then
checks the host, fetches the weights, starts the engine, arms the watchdog and waits for health: the
command opens a HostConnection for the first step and hands the same object to the others, so the
host sees one SSH login and its docker one API client (whose streams are channels of that session).
"""

from __future__ import annotations

from gpuctl.host.docker import DockerEngine, docker_access
from gpuctl.host.shell import Shell


class HostConnection:
    """A shell on a host and, once asked for, its docker engine (as the login user or through ``sudo -n``)."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self._docker: DockerEngine | None = None
        self.closed = False

    @property
    def where(self) -> str:
        return self.shell.where

    def docker(self, sudo: bool | None = None) -> DockerEngine:
        """The host's docker engine, opened once. ``sudo`` None finds out whether it needs ``sudo -n``."""
        if self._docker is not None and sudo in (None, self._docker.sudo):
            return self._docker
        if self._docker is not None:
            self._docker.close()
        self._docker = docker_access(self.shell) if sudo is None else DockerEngine(self.shell, sudo=sudo)
        return self._docker

    def close(self) -> None:
        """Close the docker client, then the SSH session (a local shell has none)."""
        if self.closed:
            return
        self.closed = True
        if self._docker is not None:
            self._docker.close()
        close = getattr(self.shell, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> HostConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
