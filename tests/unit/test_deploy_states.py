"""The deployment state machine: its table, and that every write of a record obeys it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.deploy.journal import Journal
from gpuctl.deploy.records import Records
from gpuctl.deploy.states import TRANSITIONS, InvalidTransition, check_transition
from gpuctl.errors import ExitCode
from gpuctl.models.deployment import Deployment
from gpuctl.state import StateStore, StateWriteError

ALLOWED = [("provisioning", "starting"), ("starting", "running"), ("provisioning", "failed"),
           ("starting", "failed"), ("running", "failed"), ("failed", "terminating"),
           ("running", "terminating"), ("provisioning", "terminating"), ("terminating", "terminated"),
           ("terminating", "failed")]
REFUSED = [("provisioning", "running"), ("terminated", "starting"), ("terminated", "running"),
           ("failed", "running"), ("terminating", "running"), ("running", "terminated"),
           ("provisioning", "terminated"), ("terminated", "terminating")]


def test_the_table_covers_every_status_and_ends_in_terminated() -> None:
    assert set(TRANSITIONS) == {"provisioning", "starting", "running", "failed", "terminating", "terminated"}
    assert TRANSITIONS["terminated"] == frozenset()
    for current, new in ALLOWED:
        check_transition("d", current, new)
    for current, new in REFUSED:
        with pytest.raises(InvalidTransition, match=f"cannot go from {current} to {new}") as refused:
            check_transition("d", current, new)
        assert refused.value.exit_code == ExitCode.UNEXPECTED, "a bad transition is a bug"


def test_every_record_write_is_checked(tmp_path: Path) -> None:
    records = Records(StateStore(tmp_path))
    records.reserve(Deployment(name="web", model="m", provider="fakecloud", idempotency_token="t"),
                    allocate_port=False)
    records.update("web", status="terminating")
    records.update("web", status="terminated")
    with pytest.raises(InvalidTransition):  # what an 'up' racing 'down' once wrote
        records.update("web", status="starting", instance_id="i-late")
    assert records.get("web").status == "terminated" and records.get("web").instance_id is None


def test_the_journal_keeps_what_the_file_could_not_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path)
    records = Records(store)
    journal = Journal(records, records.reserve(
        Deployment(name="web", model="m", provider="fakecloud", idempotency_token="t"), allocate_port=False))

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("gpuctl.state.atomic_write", read_only)
    with pytest.raises(StateWriteError, match=r"cannot write .*state\.json: Read-only file system") as failed:
        journal.update(status="starting", instance_id="i-1")
    assert failed.value.exit_code == ExitCode.USAGE
    assert (journal.current.status, journal.current.instance_id) == ("starting", "i-1"), "known in memory"
    journal.update(status="terminating", persist=False)  # a teardown goes on without the file
    assert journal.unwritten is failed.value
    monkeypatch.undo()
    journal.update(status="terminated", persist=False)  # writable again: the file catches up at once
    on_disk = records.get("web")
    assert (on_disk.status, on_disk.instance_id) == ("terminated", "i-1")
    with pytest.raises(InvalidTransition):
        journal.update(status="running")
