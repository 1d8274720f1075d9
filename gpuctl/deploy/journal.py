"""One deployment's record as the process working on it knows it, written through to the state file.

Every change goes to the state file first (``Records.update``, under the state lock). When that write
fails (:class:`~gpuctl.state.StateWriteError`: the project directory turned read-only or full), the
change is still applied here, in memory, so the teardown that follows knows what exists: an instance id
that never reached the file is not forgotten. Steps before a provider call insist on the write
(``persist=True``, the default: no launch without its record); a teardown goes on without it (also
when another process changed the record on file meanwhile) and the caller reports what the record
could not hold (``unwritten``).
"""

from __future__ import annotations

from typing import Any

from gpuctl.deploy.records import Records
from gpuctl.deploy.states import InvalidTransition, check_transition
from gpuctl.models.deployment import Deployment, utcnow
from gpuctl.state import StateWriteError


class Journal:
    def __init__(self, records: Records, deployment: Deployment) -> None:
        self.records = records
        self._current = deployment
        #: the status the state file holds for it (the journal checks each move itself, in order)
        self._on_file = deployment.status
        #: changes the state file has not taken yet (sent again with the next write)
        self._pending: dict[str, Any] = {}
        #: the first write that failed; None while the file holds everything
        self.unwritten: StateWriteError | None = None

    @property
    def current(self) -> Deployment:
        return self._current

    @property
    def name(self) -> str:
        return self._current.name

    def update(self, event: str | None = None, detail: str | None = None, *, persist: bool = True,
               **changes: Any) -> Deployment:
        """Apply ``changes`` (status changes checked against the state machine) and write them.

        A failed write keeps the changes in memory; it raises StateWriteError when ``persist``.
        """
        check_transition(self.name, self._current.status, changes.get("status", self._current.status))
        self._pending.update(changes)
        try:
            self._current = self.records.update(self.name, event=event, detail=detail, expect_status=self._on_file,
                                                **self._pending)
        except (StateWriteError, InvalidTransition) as exc:
            # not written: the directory refused it, or the record on file was changed by another process
            if isinstance(exc, StateWriteError):
                self.unwritten = self.unwritten or exc
            self._current = Deployment.model_validate(
                self._current.model_copy(update={**changes, "updated_at": utcnow()}).model_dump())
            if persist:
                raise
            return self._current
        self._pending = {}
        self._on_file = self._current.status
        return self._current
