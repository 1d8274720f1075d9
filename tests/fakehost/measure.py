"""How long a fake GPU host costs: ``python -m tests.fakehost.measure [ROUNDS]`` (root, packages installed).

Prints the seconds of the once-per-session image build, then per round: host start (namespace,
mounts, sshd, registry, dockerd, until all answer), the first pull of the engine image through the
registry mirror, one engine container start until its first log line, and teardown.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fakehost.host import missing_prerequisites, prepare_env


def main(rounds: int) -> int:
    problem = missing_prerequisites()
    if problem:
        print(f"cannot measure: {problem}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="fakehost-measure-"))
    try:
        started = time.perf_counter()
        env = prepare_env(workdir)
        print(f"image + client key (once per session): {time.perf_counter() - started:.2f} s")
        for number in range(1, rounds + 1):
            host = env.new_host()
            started = time.perf_counter()
            host.start()
            start_s = time.perf_counter() - started
            try:
                started = time.perf_counter()
                host.docker("pull", "-q", env.image)
                pull_s = time.perf_counter() - started
                started = time.perf_counter()
                host.docker("run", "-d", "--name", "measure", env.image, "org/m")
                while "fake engine" not in host.docker("logs", "measure").stdout:
                    time.sleep(0.02)
                run_s = time.perf_counter() - started
            finally:
                started = time.perf_counter()
                host.stop()
                stop_s = time.perf_counter() - started
            print(f"round {number}: start {start_s:.2f} s, first pull {pull_s:.2f} s, "
                  f"engine up {run_s:.2f} s, stop {stop_s:.2f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
