"""The state file: atomic writes under a lock, refusal to overwrite what it cannot read."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode, StateError
from gpuctl.models.deployment import Deployment
from gpuctl.state import SCHEMA_VERSION, StateStore


def _add(store: StateStore, name: str) -> None:
    with store.transaction() as state:
        state.deployments[name] = Deployment(name=name, model="llama-3-8b", provider="runpod",
                                             idempotency_token=f"tok-{name}")
        state.record(name, "created")


def test_empty_when_absent_and_nothing_created(tmp_path):
    store = StateStore(tmp_path)
    assert store.read().deployments == {}
    assert not store.dir.exists()


def test_roundtrip_gitignore_and_schema_version(tmp_path):
    store = StateStore(tmp_path)
    _add(store, "web")
    raw = json.loads(store.path.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["deployments"]["web"]["status"] == "provisioning"
    assert raw["history"][0]["event"] == "created"
    assert (store.dir / ".gitignore").read_text().splitlines()[-1] == "*"
    assert store.read().deployments["web"].idempotency_token == "tok-web"
    assert not list(store.dir.glob("*.tmp"))


def test_unknown_fields_survive_a_rewrite(tmp_path):
    store = StateStore(tmp_path)
    _add(store, "web")
    raw = json.loads(store.path.read_text())
    raw["deployments"]["web"]["future_field"] = {"x": 1}
    raw["future_top_level"] = [1, 2]
    store.path.write_text(json.dumps(raw))
    _add(store, "api")
    again = json.loads(store.path.read_text())
    assert again["deployments"]["web"]["future_field"] == {"x": 1}
    assert again["future_top_level"] == [1, 2]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "is corrupt"),
        ("[1, 2]", "expected a JSON object"),
        ('{"deployments": {}}', "no valid schema_version"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1}), "newer gpuctl"),
        (json.dumps({"schema_version": 1, "deployments": {"x": {"name": "x"}}}), "field 'deployments.x.model'"),
    ],
)
def test_unreadable_state_is_exit_2_and_never_overwritten(tmp_path, content, needle):
    store = StateStore(tmp_path)
    store.dir.mkdir()
    store.path.write_text(content)
    with pytest.raises(StateError) as excinfo:
        _add(store, "web")
    assert needle in excinfo.value.message
    assert excinfo.value.exit_code == ExitCode.USAGE
    assert store.path.read_text() == content


def _worker(root: str, prefix: str, count: int) -> None:
    store = StateStore(Path(root))
    for i in range(count):
        _add(store, f"{prefix}-{i}")


def test_two_processes_never_lose_updates(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), p, 40)) for p in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    state = StateStore(tmp_path).read()
    assert len(state.deployments) == 80
    assert len(state.history) == 80


def test_lock_timeout_is_exit_7(tmp_path, monkeypatch):
    from filelock import FileLock

    import gpuctl.state as state_module

    monkeypatch.setattr(state_module, "LOCK_TIMEOUT_S", 0.2)
    store = StateStore(tmp_path)
    store.dir.mkdir()
    with FileLock(str(store.lock_path)):
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_expect_timeout, args=(str(tmp_path),))
        proc.start()
        proc.join(30)
    assert proc.exitcode == 0


def _expect_timeout(root: str) -> None:
    import gpuctl.state as state_module

    state_module.LOCK_TIMEOUT_S = 0.2
    try:
        with StateStore(Path(root)).transaction():
            raise SystemExit(1)
    except state_module.TimeoutError_ as exc:
        raise SystemExit(0 if exc.exit_code == 7 else 2) from None
