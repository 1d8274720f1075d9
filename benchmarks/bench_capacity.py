#!/usr/bin/env python3
"""How many requests/s gpuctl's load generator can drive, next to vLLM's ``vllm bench serve`` client.

Both clients run in turn against one zero-delay mock server (tests/standins/mock_openai.py) at the
same concurrency with the same request shape (default: 64 in flight, 32 prompt / 128 output tokens),
interleaved so that background load hits both alike. The mock answers instantly, so the figure is
the client's own ceiling: a client that saturates early reports inflated latencies long before a
real server is the limit. Prints each run, the medians, their ratio and the load average.

The vLLM client is not part of this repository. To build the reference, take vLLM's source
(vllm-project/vllm on GitHub) into a scratch directory outside this repo, and there:
  * copy ``vllm/benchmarks/lib/endpoint_request_func.py`` (its ``async_request_openai_completions``
    with ``StreamedResponseHandler``, ``RequestFuncInput``/``RequestFuncOutput`` and helpers);
  * copy from ``vllm/benchmarks/serve.py`` the request loop unchanged: ``get_request``,
    ``benchmark`` (connector, session, warm-up, semaphore, ``limited_request_func``, one task per
    request, ``asyncio.gather``) and ``calculate_metrics``; stub what they import from vllm
    (datasets: a ``SampleRequest`` dataclass and prompts of ``--input-len`` words; tokenizer: None,
    the output length comes from the usage chunk; ``freeze_gc_heap``: ``gc.freeze()``);
  * give it a command line ``--base-url URL --model M --max-concurrency N --num-prompts N
    --num-warmups N --input-len N --output-len N [--disable-tqdm] --json`` that prints one JSON object
    with ``requests_per_s`` (and ``ttft_ms``/``itl_ms`` with ``mean``, ``p50``, ``p90``, ``p99`` for
    bench_accuracy.py).
Then: ``python3 benchmarks/bench_capacity.py --vllm-ref /tmp/vllm-ref/serve_ref.py``. vLLM's tqdm
progress bar is on by default there, as in ``vllm bench serve``; ``--vllm-no-tqdm`` turns it off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "standins"))
from mock_openai import MockProcess  # noqa: E402

LOADGEN = ROOT / "gpuctl" / "bench" / "loadgen.py"


def gpuctl_rps(url: str, args: argparse.Namespace) -> tuple[float, bool]:
    command = [sys.executable, str(LOADGEN), "--url", url, "--model", "mock-model", "--concurrency",
               str(args.concurrency), "--requests", str(args.requests), "--warmup", str(args.concurrency),
               "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--json", "-q"]
    run = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["runs"][0]
    assert run["requests_failed"] == 0, run["errors"]
    return run["requests_per_s"], run["client"]["saturated"]


def vllm_rps(url: str, args: argparse.Namespace) -> float:
    command = [sys.executable, args.vllm_ref, "--base-url", url, "--model", "mock-model", "--max-concurrency",
               str(args.concurrency), "--num-prompts", str(args.requests), "--num-warmups", str(args.concurrency),
               "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--json"]
    if args.vllm_no_tqdm:
        command.append("--disable-tqdm")
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(args.vllm_ref))).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result.get("failed", 0) == 0, result
    return result["requests_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-ref", help="the extracted vLLM reference client (see above)")
    parser.add_argument("--vllm-no-tqdm", action="store_true", help="run vLLM's client with --disable-tqdm")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"gpuctl": [], "vllm": []}
    load = []
    with MockProcess("--no-record-events") as mock:
        for _ in range(args.repeat):
            load.append(os.getloadavg()[0])
            runs["gpuctl"].append(gpuctl_rps(mock.url, args)[0])
            if args.vllm_ref:
                load.append(os.getloadavg()[0])
                runs["vllm"].append(vllm_rps(mock.url, args))
    medians = {name: statistics.median(values) for name, values in runs.items() if values}
    result = {"concurrency": args.concurrency, "input_len": args.input_len, "output_len": args.output_len,
              "requests": args.requests, "load_average_1m": [min(load), max(load)], "runs": runs,
              "median_requests_per_s": medians,
              "ratio": medians["gpuctl"] / medians["vllm"] if "vllm" in medians else None}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"concurrency {args.concurrency}, {args.input_len} in / {args.output_len} out tokens, zero-delay mock, "
          f"{args.requests} requests per run; load average (1 min) {min(load):.2f}-{max(load):.2f}")
    for name, values in runs.items():
        if values:
            print(f"{name:7} median {medians[name]:8.1f} req/s   runs: {', '.join(f'{v:.0f}' for v in values)}")
    if result["ratio"]:
        print(f"gpuctl / vllm: {result['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
