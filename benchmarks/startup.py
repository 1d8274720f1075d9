"""Start-up time of ``gpuctl --help`` next to a bare ``python -c pass``, measured in one run.

Usage: python benchmarks/startup.py [--runs N]

Reports medians for: the interpreter alone, ``python -m gpuctl --help``, and the ``gpuctl`` console
script found on PATH (which may be wrapped by a version-manager shim), plus the differences.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_ms(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    bare = median_ms([sys.executable, "-c", "pass"], args.runs)
    module = median_ms([sys.executable, "-m", "gpuctl", "--help"], args.runs)
    print(f"python -c pass              {bare:7.1f} ms")
    print(f"python -m gpuctl --help     {module:7.1f} ms   (+{module - bare:.1f} ms over the interpreter)")
    script = shutil.which("gpuctl")
    if script:
        shim = median_ms(["sh", "-c", "true"], args.runs)
        on_path = median_ms([script, "--help"], args.runs)
        print(f"gpuctl --help ({script})  {on_path:7.1f} ms   (+{on_path - bare:.1f} ms over the interpreter)")
        print(f"(sh -c true: {shim:.1f} ms, for scale)")


if __name__ == "__main__":
    main()
