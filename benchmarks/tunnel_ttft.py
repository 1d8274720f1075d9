#!/usr/bin/env python3
"""What gpuctl's local port forwarding (``gpuctl.host.tunnel``, how a private endpoint is benched) adds to
the TTFT and ITL the load generator reports, against the server's own timestamps.

The mock server (tests/standins/mock_openai.py) is reached once directly and once through
``forward_local``, whose SSH transport is replaced by plain TCP connections to the mock: what is measured
is the forwarder itself, not SSH. Figures are the median over ``--repeat`` runs of the reported minus the
true value (ms). The default server answers its first token 5 ms after the request, as a fast GPU does a
short prompt: sooner than a client's delayed ACK (40 ms), which is where Nagle's algorithm on the
forwarder's socket held the first event back (measured on 2026-12-07: +37.8 ms at concurrency 1 and
+38.1 ms at 8 without TCP_NODELAY, +0.1 and +0.3 ms with it; direct +0.2 and +1.0 ms).

    python3 benchmarks/tunnel_ttft.py --concurrency 1,8 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "standins"))
from mock_openai import MockProcess, ground_truth  # noqa: E402

from gpuctl.bench.loadgen import summarize_ms  # noqa: E402
from gpuctl.host.tunnel import forward_local  # noqa: E402

LOADGEN = ROOT / "gpuctl" / "bench" / "loadgen.py"


class TcpTransport:
    """Stands in for paramiko's transport: each channel is a TCP connection to the server."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def open_channel(self, kind: str, remote: tuple[str, int], origin: tuple[str, int],
                     timeout: float) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)


def run(url: str, concurrency: int, requests: int) -> dict:
    command = [sys.executable, str(LOADGEN), "--url", url, "--concurrency", str(concurrency), "--requests",
               str(requests), "--warmup", str(concurrency), "--input-len", "32", "--output-len", "32", "--json",
               "-q"]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["runs"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ttft-ms", type=float, default=5.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    args = parser.parse_args()
    errors: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with MockProcess("--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)) as mock:
        parts = urlsplit(mock.url)
        with forward_local(TcpTransport(parts.hostname or "127.0.0.1", parts.port or 80), "127.0.0.1", 0) as port:
            routes = {"direct": mock.url, "tunnel": f"http://127.0.0.1:{port}"}
            for _ in range(args.repeat):
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    for route, url in routes.items():
                        mock.reset()
                        reported = run(url, concurrency, max(32, 4 * concurrency))
                        truth = ground_truth(mock.stats()["records"], concurrency)
                        ttft, itl = summarize_ms(truth["ttft"]), summarize_ms(truth["itl"])
                        errors.setdefault((route, concurrency), []).append(
                            (reported["ttft_ms"]["p50"] - ttft["p50"], reported["itl_ms"]["mean"] - itl["mean"]))
    print(f"server truth: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms; median of {args.repeat} runs")
    print(f"{'route':8} {'conc':>4}  {'TTFT p50 error ms':>18}  {'ITL mean error ms':>18}")
    for (route, concurrency), pairs in errors.items():
        ttft_err = statistics.median(p[0] for p in pairs)
        itl_err = statistics.median(p[1] for p in pairs)
        print(f"{route:8} {concurrency:>4}  {ttft_err:>+18.2f}  {itl_err:>+18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
