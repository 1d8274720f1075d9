"""``.gpuctl/state.json``: deployments and their history, shared safely between gpuctl processes.

Writes happen under an exclusive lock, through a temp file, fsync and ``os.replace``. A file that is
corrupt or written by a newer gpuctl is never overwritten. A directory that cannot be written (read-only,
full, not ours) is bad input (:class:`StateWriteError`, exit 2), never a crash: the deploy code goes on
tearing down what it created and says what the record could not hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuctl.errors import FileSystemError, StateError, TimeoutError_, UsageError
from gpuctl.fsutil import atomic_write
from gpuctl.models.bench import BenchRecord
from gpuctl.models.deployment import Deployment, HistoryEvent, Service
from gpuctl.project import STATE_DIR, describe_validation_error

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
LOCK_TIMEOUT_S = 30.0


class StateWriteError(UsageError):
    """The state file could not be written: the project directory is read-only, full or not ours (exit 2)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot write {path}: {reason}",
                         f"make {path.parent} writable (or free space there), then run the command again")
        self.path = path
        self.cause = reason
        #: the record as this process left it, newer than the file (set by the teardown that reports it)
        self.known: Deployment | None = None


class State(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    deployments: dict[str, Deployment] = Field(default_factory=dict)
    history: list[HistoryEvent] = Field(default_factory=list)
    bench_runs: list[BenchRecord] = Field(default_factory=list)
    #: replicas behind a router (gpuctl.deploy.service)
    services: dict[str, Service] = Field(default_factory=dict)

    def record(self, deployment: str, event: str, detail: str | None = None) -> None:
        self.history.append(HistoryEvent(deployment=deployment, event=event, detail=detail))


class StateStore:
    """The state file of one project."""

    def __init__(self, project_root: Path) -> None:
        self.dir = project_root / STATE_DIR
        self.path = self.dir / STATE_FILE
        self.lock_path = self.dir / LOCK_FILE

    def read(self) -> State:
        """The current state (empty if there is none yet). Safe without the lock: writes are atomic."""
        if self.dir.exists() and not self.dir.is_dir():
            raise StateError(f"{self.dir} is a file, not gpuctl's state directory",
                             f"move {self.dir} away: gpuctl keeps this project's deployments in that directory")
        if not self.path.exists():
            return State()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FileSystemError.from_os_error(exc, "read") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.path} is corrupt ({exc.__class__.__name__}: {exc})") from exc
        if not isinstance(raw, dict):
            raise StateError(f"{self.path} is corrupt (expected a JSON object)")
        version = raw.get("schema_version")
        if not isinstance(version, int):
            raise StateError(f"{self.path} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by a newer gpuctl (schema {version}, this one reads {SCHEMA_VERSION})",
                "upgrade gpuctl: pip install -U gpuctl",
            )
        try:
            return State.model_validate(raw)
        except ValidationError as exc:
            raise StateError(f"{self.path}: {describe_validation_error(exc)}") from exc

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Read, let the caller change, and write back the state, all under the exclusive lock."""
        from filelock import FileLock, Timeout

        try:
            self._ensure_dir()
        except OSError as exc:
            raise StateWriteError(self.dir, exc) from exc
        lock = FileLock(str(self.lock_path))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:  # an OSError too: first
            raise TimeoutError_(
                f"another gpuctl process has held {self.lock_path} for {LOCK_TIMEOUT_S:.0f}s",
                "wait for it to finish, or remove the lock file if no gpuctl is running",
            ) from None
        except OSError as exc:
            raise StateWriteError(self.lock_path, exc) from exc
        try:
            state = self.read()
            yield state
            try:
                atomic_write(self.path, state.model_dump_json(indent=2) + "\n")
            except OSError as exc:
                raise StateWriteError(self.path, exc) from exc
        finally:
            lock.release()

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        ignore = self.dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# gpuctl state: local to this machine, may name live instances\n*\n")
