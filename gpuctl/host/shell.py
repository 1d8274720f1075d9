"""Running commands on a host, local or remote, behind one small interface.

The docker and check code is written once against :class:`Shell`; :class:`LocalShell` (this machine,
``--host local``) and :class:`gpuctl.host.ssh.SshSession` (a remote host) implement it. Besides
commands, a shell *dials*: it starts a command whose stdin and stdout become one byte stream, which is
how docker's API is reached on a host (``docker system dial-stdio``) over the connection gpuctl holds.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from gpuctl.errors import TimeoutError_
from gpuctl.host.errors import HostError


class CommandResult(BaseModel):
    """Exit status and output of one command (output decoded as UTF-8, bad bytes replaced)."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, what: str, where: str) -> CommandResult:
        """Raise HostError naming ``what`` failed on ``where`` (with the last stderr line) unless ok."""
        if not self.ok:
            raise HostError(f"{what} failed on {where} (exit {self.exit_code}): {self.last_error_line()}")
        return self

    def last_error_line(self) -> str:
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


class Shell(Protocol):
    """A place commands run. ``argv`` is never passed through a local shell; remote hosts get it quoted."""

    @property
    def where(self) -> str:
        """Human name of the host, for messages ('local', 'ubuntu@203.0.113.7:22')."""
        ...

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        ...

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
        """Lines of output (stdout and stderr merged) as they come; closing the iterator ends the command."""
        ...

    def dial(self, argv: Sequence[str]) -> Dialer:
        """Streams to ``argv`` on the host: each ``open()`` starts it with its stdin and stdout as one stream."""
        ...


class Dialer(Protocol):
    """Opens byte streams (socket-like: ``sendall``, ``recv``, ``makefile``, ``settimeout``, ``close``)."""

    #: whether the streams are paramiko channels rather than sockets (docker-py unwraps them differently)
    ssh_channels: bool

    def open(self, timeout: float | None) -> Any:
        ...

    def failure(self) -> str | None:
        """Why the last stream's command ended, if it did ('exit 127: docker: not found'); None otherwise."""
        ...

    def close(self) -> None:
        """End every stream still open and reap their commands."""
        ...


def quote_argv(argv: Sequence[str]) -> str:
    """One shell command line for a remote ``sh -c``, every word quoted."""
    return shlex.join(argv)


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LocalShell:
    """This machine (``--host local``)."""

    where = "local"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # env lets callers aim the docker CLI at another engine (DOCKER_HOST) without touching os.environ
        self.env = {**os.environ, **(env or {})}

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        try:
            proc = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, env=self.env,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            return CommandResult(argv=list(argv), exit_code=127, stdout="", stderr=f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            raise TimeoutError_(f"'{quote_argv(argv)}' did not finish within {timeout:g}s on {self.where}") from None
        return CommandResult(argv=list(argv), exit_code=proc.returncode, stdout=decode(proc.stdout),
                             stderr=decode(proc.stderr))

    def stream(self, argv: Sequence[str]) -> Generator[str, None, None]:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env)
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                yield decode(raw).rstrip("\r\n")
        finally:
            proc.terminate()
            proc.wait()
            proc.stdout.close()

    def dial(self, argv: Sequence[str]) -> ProcessDialer:
        return ProcessDialer(argv, self.env)


class ProcessDialer:
    """Streams to local processes: each one's stdin and stdout are one end of a socket pair."""

    ssh_channels = False

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.argv = list(argv)
        self.env = env
        self._lock = threading.Lock()
        self._running: list[tuple[subprocess.Popen[bytes], socket.socket]] = []
        self._last: subprocess.Popen[bytes] | None = None

    def open(self, timeout: float | None) -> socket.socket:
        ours, theirs = socket.socketpair()
        try:
            # its own session: a Ctrl-C of gpuctl must not cut the streams its cleanup still needs
            proc = subprocess.Popen(self.argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE,
                                    env=self.env, start_new_session=True)
        except FileNotFoundError:
            ours.close()
            raise HostError(f"{self.argv[0]}: command not found on local") from None
        finally:
            theirs.close()
        ours.settimeout(timeout)
        with self._lock:
            self._reap()
            self._running.append((proc, ours))
            self._last = proc
        return ours

    def failure(self) -> str | None:
        with self._lock:
            proc = self._last
        if proc is None or proc.stderr is None or proc.stderr.closed:
            return None
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        lines = [line.strip() for line in decode(proc.stderr.read()).splitlines() if line.strip()]
        return f"exit {code}" + (f": {lines[-1]}" if lines else "")

    def close(self) -> None:
        with self._lock:
            running, self._running, self._last = self._running, [], None
        for proc, ours in running:
            ours.close()  # EOF on its stdin ends it
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _close_stderr(proc)

    def _reap(self) -> None:
        """Forget the processes whose stream ended, so none stays a zombie."""
        alive = []
        for proc, ours in self._running:
            if proc.poll() is None:
                alive.append((proc, ours))
            else:
                ours.close()
                _close_stderr(proc)
        self._running = alive


def _close_stderr(proc: subprocess.Popen[bytes]) -> None:
    if proc.stderr is not None:
        proc.stderr.close()
