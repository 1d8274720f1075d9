"""Running commands on a host, local or remote, behind one small interface.

The docker and check code is written once against :class:`Shell`; :class:`LocalShell` (this machine,
``--host local``) and :class:`gpuctl.host.ssh.SshSession` (a remote host) implement it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from typing import Protocol

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

    def write_secret_file(self, data: bytes, name: str) -> str:
        """Write ``data`` to a new file only the login user can read (0600); return its absolute path."""
        ...

    def remove_file(self, path: str) -> None:
        ...


def quote_argv(argv: Sequence[str]) -> str:
    """One shell command line for a remote ``sh -c``, every word quoted."""
    return shlex.join(argv)


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LocalShell:
    """This machine (``--host local``). Secret files go to a private temp directory."""

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

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
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

    def write_secret_file(self, data: bytes, name: str) -> str:
        fd, path = tempfile.mkstemp(prefix=f"gpuctl-{name}-")  # mkstemp creates it 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def remove_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
