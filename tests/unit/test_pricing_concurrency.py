"""gpuctl.concurrency: calls side by side, per-call deadlines, and abandoned calls not holding exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from gpuctl.concurrency import run_all, values_or_raise


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
