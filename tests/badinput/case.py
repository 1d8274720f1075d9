"""One bad input: what a user types (argv, files, environment) and what gpuctl must answer.

The answer is always one ``error:`` line on stderr (with a hint) matching ``message``, the exit code
docs/exit-codes.md documents for it, nothing on stdout, no traceback, and every file the case wrote left
byte-identical (a broken, foreign or newer file is never rewritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: a file entry that is a directory instead of a file
DIR = object()

#: what a never-answering provider API looks like: a closed port on loopback (no test traffic leaves the machine)
CLOSED = "http://127.0.0.1:9"

@dataclass(frozen=True)
class Case:
    """``files`` maps a path to its content (str, bytes or DIR): relative to the project directory, or under
    ``config:`` (GPUCTL_CONFIG_DIR) or ``home:`` ($HOME). ``deployments`` are records put in the state file
    first (name -> fields of :class:`gpuctl.models.deployment.Deployment`)."""

    id: str
    argv: tuple[str, ...]
    code: int
    message: str
    files: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: why the case still fails today, naming what fixes it (the test is a strict xfail until then)
    xfail: str | None = None


def case(id: str, argv: str | tuple[str, ...], code: int, message: str, **kwargs: Any) -> Case:
    """A case; a string ``argv`` is split on spaces (use a tuple for an argument holding one)."""
    return Case(id, tuple(argv.split()) if isinstance(argv, str) else argv, code, message, **kwargs)
