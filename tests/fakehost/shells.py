"""Test doubles around gpuctl.host.shell.Shell: a scripted one for unit tests, a recording wrapper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from gpuctl.host.shell import CommandResult, Shell


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
    files: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    _rules: list[tuple[list[str], CommandResult]] = field(default_factory=list)

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

    def write_secret_file(self, data: bytes, name: str) -> str:
        path = f"/home/test/.gpuctl/{name}-{len(self.files)}"
        self.files[path] = data
        return path

    def remove_file(self, path: str) -> None:
        self.removed.append(path)

    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]


@dataclass
class RecordingShell:
    """Passes every call through to a real shell and keeps each argv gpuctl ran (to look for secrets)."""

    inner: Shell
    argvs: list[list[str]] = field(default_factory=list)
    secret_files: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.inner.where

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0) -> CommandResult:
        self.argvs.append(list(argv))
        return self.inner.run(argv, input=input, timeout=timeout)

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
        self.argvs.append(list(argv))
        return self.inner.stream(argv)

    def write_secret_file(self, data: bytes, name: str) -> str:
        path = self.inner.write_secret_file(data, name)
        self.secret_files.append(path)
        return path

    def remove_file(self, path: str) -> None:
        self.inner.remove_file(path)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` every 50 ms; False if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
