"""gpuctl.concurrency: calls side by side, per-call deadlines, abandoned calls not holding exit, forked calls."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from gpuctl.concurrency import ChildCall, can_fork, run_all, values_or_raise
from gpuctl.errors import CredentialsError, ExitCode


def test_values_errors_and_deadlines_are_reported_per_call() -> None:
    def boom() -> int:
        raise ValueError("bad")

    start = time.monotonic()
    outcomes = run_all({"ok": lambda: 1, "err": boom, "slow": lambda: time.sleep(2) or 3}, timeout=0.2)
    assert time.monotonic() - start < 1.0
    assert (outcomes["ok"].finished, outcomes["ok"].value, outcomes["ok"].error) == (True, 1, None)
    assert outcomes["err"].finished and isinstance(outcomes["err"].error, ValueError)
    assert (outcomes["slow"].finished, outcomes["slow"].value) == (False, None)


def test_calls_run_at_the_same_time() -> None:
    start = time.monotonic()
    values = values_or_raise(run_all({n: (lambda n=n: time.sleep(0.3) or n) for n in range(4)}))
    assert values == {0: 0, 1: 1, 2: 2, 3: 3}
    assert time.monotonic() - start < 0.9  # 4 x 0.3 s in a row would be 1.2 s


def test_values_or_raise_raises_the_first_error_as_is() -> None:
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        values_or_raise(run_all({"a": lambda: 1, "b": boom}))


def test_an_abandoned_call_does_not_keep_the_process_alive() -> None:
    script = textwrap.dedent("""
        import time
        from gpuctl.concurrency import run_all
        run_all({"hang": lambda: time.sleep(30)}, timeout=0.1)
        print("done")
    """)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert result.stdout == "done\n"
    assert time.monotonic() - start < 10


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked calls are Linux-only")


@linux_only
def test_a_forked_call_runs_in_another_process_and_returns_its_value() -> None:
    child = ChildCall(lambda: {"pid": os.getpid(), "rows": [1.5, "x"]})
    assert child.result() == {"pid": child.pid, "rows": [1.5, "x"]}
    assert child.pid != os.getpid()
    with pytest.raises(ChildProcessError):  # reaped by result(): no zombie left behind
        os.waitpid(child.pid, os.WNOHANG)


@linux_only
def test_a_forked_call_raises_its_error_in_the_parent_with_message_and_hint() -> None:
    def refuse() -> None:
        raise CredentialsError("AWS rejected the credentials (AuthFailure on DescribeInstanceTypes)", "set them")

    with pytest.raises(CredentialsError) as caught:
        ChildCall(refuse).result()
    assert (caught.value.one_line(), caught.value.exit_code) == (
        "AWS rejected the credentials (AuthFailure on DescribeInstanceTypes) (hint: set them)", ExitCode.CREDENTIALS)


@linux_only
def test_an_error_that_cannot_be_pickled_arrives_as_its_description() -> None:
    class Odd(Exception):
        def __init__(self, code: int, why: str) -> None:
            super().__init__(f"{code}: {why}")

    with pytest.raises(RuntimeError, match=r"^Odd: 7: broken$"):
        ChildCall(lambda: (_ for _ in ()).throw(Odd(7, "broken"))).result()


@linux_only
def test_stop_kills_a_child_still_running() -> None:
    child = ChildCall(lambda: time.sleep(30))
    start = time.monotonic()
    child.stop()
    assert time.monotonic() - start < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)
    with pytest.raises(RuntimeError, match="ended without an answer"):
        child.result()


def test_no_fork_while_another_thread_runs() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    try:
        assert can_fork() is False
    finally:
        release.set()
        thread.join()
