"""Test doubles around gpuctl.host.shell.Shell: a scripted one for unit tests, a recording wrapper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from gpuctl.host.shell import CommandResult, Dialer, Shell
from tests.fakehost.dockerapi import FakeDockerApi


@dataclass
class Call:
    argv: list[str]
    input: bytes | None


@dataclass
class ScriptedShell:
    """Answers commands from rules (``on``); records every call, written file and removal.

    A rule matches when its words are the first words of the argv; the rule added last wins, and
    an unmatched command answers exit 127 ("command not found").
    """

    where: str = "test@host:22"
    calls: list[Call] = field(default_factory=list)
    dialed: list[list[str]] = field(default_factory=list)
    _rules: list[tuple[list[str], CommandResult]] = field(default_factory=list)
    _docker: dict[bool, FakeDockerApi] = field(default_factory=dict)

    def with_docker(self, api: FakeDockerApi, *, sudo: bool = False) -> ScriptedShell:
        """Let ``[sudo -n] docker system dial-stdio`` reach ``api`` (else it is 'command not found')."""
        self._docker[sudo] = api
        return self

    def on(self, *prefix: str, exit_code: int = 0, stdout: str = "", stderr: str = "") -> ScriptedShell:
        self._rules.append((list(prefix), CommandResult(argv=list(prefix), exit_code=exit_code, stdout=stdout,
                                                        stderr=stderr)))
        return self

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        self.calls.append(Call(list(argv), input))
        for prefix, result in reversed(self._rules):
            if list(argv[: len(prefix)]) == prefix:
                return result.model_copy(update={"argv": list(argv)})
        return CommandResult(argv=list(argv), exit_code=127, stdout="", stderr=f"sh: 1: {argv[0]}: not found")

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
        yield from self.run(argv).stdout.splitlines()

    def dial(self, argv: Sequence[str]) -> Dialer:
        self.dialed.append(list(argv))
        sudo = argv[0] == "sudo"
        api = self._docker.get(sudo) or FakeDockerApi(failure=f"exit 127: sh: 1: {argv[0]}: not found")
        return api.dialer()

    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]


@dataclass
class RecordingShell:
    """Passes every call through to a real shell and keeps each argv gpuctl ran (to look for secrets)."""

    inner: Shell
    argvs: list[list[str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.inner.where

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        self.argvs.append(list(argv))
        return self.inner.run(argv, input=input, timeout=timeout)

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
        self.argvs.append(list(argv))
        return self.inner.stream(argv)

    def dial(self, argv: Sequence[str]) -> Dialer:
        self.argvs.append(list(argv))
        return self.inner.dial(argv)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` every 50 ms; False if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
