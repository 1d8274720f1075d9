"""What vllm-router adds between clients and replicas: TTFT and throughput through it versus straight to an engine.

Two stand-in engines (tests/standins/mock_openai.py: known TTFT and inter-token latency) on loopback,
the router gpuctl starts for ``up --replicas`` (gpuctl.deploy.router.start_local) in front of them, and
``gpuctl bench`` run against one engine directly and against the router, at a few concurrencies.
Everything runs on this machine and stops by itself::

    python benchmarks/router_overhead.py --requests 200 --concurrency 1,8,32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpuctl.deploy import router  # noqa: E402
from tests.standins.mock_openai import MockProcess  # noqa: E402

KEY = "gpuctl-router-bench-key"


def bench(url: str, concurrency: int, requests: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "gpuctl", "bench", "--url", url, "--model", "mock-model", "--api-key", KEY,
         "-c", str(concurrency), "-n", str(requests), "--output-len", "32", "--input-len", "64", "--json"],
        capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout)["runs"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    timing = ("--ttft-ms", "50", "--itl-ms", "10", "--api-key", KEY)
    with MockProcess(*timing) as one, MockProcess(*timing) as two, tempfile.TemporaryDirectory() as state:
        record = router.start_local(Path(state), "bench", policy="round_robin", api_key=KEY, workers=[one.url, two.url])
        try:
            print(f"{'concurrency':>11} {'path':>7} {'TTFT p50 ms':>12} {'TTFT p90 ms':>12} {'out tok/s':>10}")
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for label, url in (("direct", one.url), ("router", record.url)):
                    run = bench(url, concurrency, args.requests)
                    ttft = run["ttft_ms"]
                    print(f"{concurrency:>11} {label:>7} {ttft['p50']:>12.1f} {ttft['p90']:>12.1f} "
                          f"{run['output_tokens_per_s']:>10.1f}")
        finally:
            router.stop_local(record)


if __name__ == "__main__":
    main()
