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

#: the items of the other half of issue 15 (branch i15a) that fix the cases still wrong today
NO_ACCOUNT = "i15a: no-account path (up proposes only offers it can launch; exit 6 before the price)"
FS_ERRORS = "i15a: file-system errors exit 2 naming the path and the cause"
TTL_MAX = "i15a: TTLs have a documented maximum"
NAME_DEFAULT = "i15a: NAME defaults to the only deployment (the error lists them when there are several)"
INIT_MODEL = "i15a: smaller items ('init --model nosuch' is accepted)"
#: found by this suite, in no i15a item (reported to the integrator)
ENDED_LOGS = ("not in i15a: 'logs' of an ended deployment asks its provider (exit 6 without a key) instead of "
              "saying it ended")


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
    #: why the case still fails today: the i15a item that fixes it (the test is a strict xfail until then)
    xfail: str | None = None


def case(id: str, argv: str | tuple[str, ...], code: int, message: str, **kwargs: Any) -> Case:
    """A case; a string ``argv`` is split on spaces (use a tuple for an argument holding one)."""
    return Case(id, tuple(argv.split()) if isinstance(argv, str) else argv, code, message, **kwargs)
