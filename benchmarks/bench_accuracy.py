#!/usr/bin/env python3
"""How far gpuctl's reported TTFT and per-token ITL are from a server's ground truth.

The mock server (tests/standins/mock_openai.py) records when it read each request and when it wrote
each event. For each concurrency this runs gpuctl's load generator against it, repeats, and prints the
error of the reported mean/p50/p90/p99 against the same statistics of the server's own timestamps (ms;
positive = the client reports more than the server did). ``--vllm-ref PATH`` also runs vLLM's
``vllm bench serve`` request loop (see bench_capacity.py for how to extract it) for comparison.

    python3 benchmarks/bench_accuracy.py --concurrency 1,16,64 --repeat 3
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
from mock_openai import MockProcess, ground_truth  # noqa: E402

from gpuctl.bench.loadgen import summarize_ms  # noqa: E402

LOADGEN = ROOT / "gpuctl" / "bench" / "loadgen.py"
STATS = ("mean", "p50", "p90", "p99")


def truth_stats(records: list[dict], skip: int) -> dict[str, dict[str, float]]:
    truth = ground_truth(records, skip)
    return {"ttft": summarize_ms(truth["ttft"]), "itl": summarize_ms(truth["itl"])}


def run_gpuctl(url: str, concurrency: int, requests: int, output_len: int) -> tuple[dict, int]:
    command = [sys.executable, str(LOADGEN), "--url", url, "--concurrency", str(concurrency), "--requests",
               str(requests), "--warmup", str(concurrency), "--input-len", "32", "--output-len", str(output_len),
               "--json", "-q"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    run = json.loads(out)["runs"][0]
    return {"ttft": run["ttft_ms"], "itl": run["itl_ms"], "saturated": run["client"]["saturated"]}, concurrency


def run_vllm(ref: str, url: str, concurrency: int, requests: int, output_len: int) -> tuple[dict, int]:
    command = [sys.executable, ref, "--base-url", url, "--model", "mock-model", "--max-concurrency",
               str(concurrency), "--num-prompts", str(requests), "--num-warmups", str(concurrency),
               "--input-len", "32", "--output-len", str(output_len), "--disable-tqdm", "--json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=os.path.dirname(ref)).stdout
    run = json.loads(out.strip().splitlines()[-1])
    return {"ttft": run["ttft_ms"], "itl": run["itl_ms"], "saturated": None}, concurrency + 1  # + its test request


def errors(reported: dict, truth: dict) -> dict[str, dict[str, float]]:
    return {m: {s: reported[m][s] - truth[m][s] for s in STATS} for m in ("ttft", "itl")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--tokens-per-event", type=int, default=1)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--vllm-ref", help="path to the extracted vLLM reference client (serve_ref.py)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clients = {"gpuctl": None}
    if args.vllm_ref:
        clients["vllm"] = args.vllm_ref
    table: dict[str, dict[int, list[dict]]] = {name: {} for name in clients}
    load = []
    mock_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
                 "--tokens-per-event", str(args.tokens_per_event)]
    with MockProcess(*mock_args) as mock:
        for _ in range(args.repeat):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                requests = max(32, 4 * concurrency)
                for name, ref in clients.items():
                    mock.reset()
                    load.append(os.getloadavg()[0])
                    if ref:
                        reported, skip = run_vllm(ref, mock.url, concurrency, requests, args.output_len)
                    else:
                        reported, skip = run_gpuctl(mock.url, concurrency, requests, args.output_len)
                    truth = truth_stats(mock.stats()["records"], skip)
                    entry = {"errors": errors(reported, truth), "truth": truth, "saturated": reported["saturated"]}
                    table[name].setdefault(concurrency, []).append(entry)
    summary = {name: {c: {m: {s: statistics.median(e["errors"][m][s] for e in entries) for s in STATS}
                          for m in ("ttft", "itl")} for c, entries in per_c.items()}
               for name, per_c in table.items()}
    result = {"load_average_1m": {"min": min(load), "max": max(load)}, "repeat": args.repeat,
              "median_error_ms": summary,
              "saturated_runs": {c: sum(bool(e["saturated"]) for e in v) for c, v in table["gpuctl"].items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"load average (1 min) during the runs: {min(load):.2f}-{max(load):.2f}; median of {args.repeat} runs")
    print(f"server truth: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms, {args.tokens_per_event} token(s)/event")
    print(f"{'client':8} {'conc':>4}  {'TTFT err mean/p50/p90/p99 (ms)':>34}  {'ITL err mean/p50/p90/p99 (ms)':>34}")
    for name, per_c in summary.items():
        for c, errs in per_c.items():
            cells = ["/".join(f"{errs[m][s]:+.2f}" for s in STATS) for m in ("ttft", "itl")]
            print(f"{name:8} {c:>4}  {cells[0]:>34}  {cells[1]:>34}")
    flagged = ", ".join(f"c={c}: {n}/{args.repeat}" for c, n in result["saturated_runs"].items())
    print(f"gpuctl runs flagged client_saturated: {flagged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
