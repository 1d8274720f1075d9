"""Wall time of ``gpuctl prices`` with three providers that each answer every request after 300 ms.

Usage: python benchmarks/prices_fanout.py [--runs N] [--delay-ms MS]

Set-up, all on 127.0.0.1:
- RunPod and Lambda: the REST stand-ins of tests/standins, with their delay option.
- AWS EC2: ``moto_server`` behind a small proxy that delays every request. moto needs 0.2-0.6 s
  of its own to filter its 1,200 instance types, so the proxy records each distinct answer
  during a warm-up run and replays it afterwards: every EC2 call then takes the delay, as the
  other providers' calls do.
- AWS Price List: moto has none, so a tiny endpoint speaking the ``GetProducts`` wire protocol
  (JSON 1.1) answers from a price table, with the same delay; gpuctl reaches it through
  ``AWS_ENDPOINT_URL_PRICING`` (EC2 through ``AWS_ENDPOINT_URL``).

Every measurement is a fresh ``gpuctl`` process (start-up included), median of ``--runs``, and every
launcher imports gpuctl from this checkout (``PYTHONPATH``), not from wherever it is installed:
``prices --refresh`` (all three live), each provider alone (their sum is what a sequential
fan-out would cost), and ``prices`` from a warm cache; each through the real interpreter
(``python -m gpuctl``) and through the ``gpuctl`` executable on PATH (a pyenv shim here).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.providers.aws_fakes import ON_DEMAND, product  # noqa: E402
from tests.standins.fixtures import LAMBDA_TEST_KEY, RUNPOD_TEST_KEY  # noqa: E402
from tests.standins.lambda_server import LambdaStandin  # noqa: E402
from tests.standins.runpod_server import RunPodStandin  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def delayed_replaying_proxy(upstream_port: int, delay_s: float) -> ThreadingHTTPServer:
    """Forwards to moto_server once per distinct request body, then replays; every answer waits ``delay_s``."""
    recorded: dict[tuple[str, bytes], tuple[int, list[tuple[str, str]], bytes]] = {}

    class Proxy(_Quiet):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            started = time.monotonic()
            key = (self.path, body)
            if key not in recorded:
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                conn.request("POST", self.path, body, {k: v for k, v in self.headers.items() if k.lower() != "host"})
                answer = conn.getresponse()
                recorded[key] = (answer.status, answer.getheaders(), answer.read())
                conn.close()
            time.sleep(max(0.0, delay_s - (time.monotonic() - started)))
            self.reply(*recorded[key])

    return ThreadingHTTPServer(("127.0.0.1", 0), Proxy)


def pricing_endpoint(delay_s: float) -> ThreadingHTTPServer:
    """``AWSPriceListService.GetProducts`` over the table of tests/providers/aws_fakes.py."""

    class Pricing(_Quiet):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            time.sleep(delay_s)
            target = self.headers.get("X-Amz-Target", "")
            if target != "AWSPriceListService.GetProducts":
                self.reply(400, [("Content-Type", "application/x-amz-json-1.1")],
                           json.dumps({"__type": "InvalidParameterException", "message": target}).encode())
                return
            wanted = {f["Field"]: f["Value"] for f in request.get("Filters", [])}
            documents = [product(itype, region, usd) for (region, itype), usd in ON_DEMAND.items()]
            matching = [json.dumps(d) for d in documents
                        if all(d["product"]["attributes"].get(k) == v for k, v in wanted.items())]
            body = json.dumps({"FormatVersion": "aws_v1", "PriceList": matching}).encode()
            self.reply(200, [("Content-Type", "application/x-amz-json-1.1")], body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Pricing)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def moto_server() -> Iterator[int]:
    port = free_port()
    command = [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Timing:
    wall: float  # median seconds, start-up included
    cpu: float  # median user + system seconds of the gpuctl process and the children it forked
    samples: list[float]
    stdout: str


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu, done.stdout


def timed(command: list[str], env: dict[str, str], runs: int) -> Timing:
    results = [run(command, env) for _ in range(runs)]
    return Timing(statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
                  [r[0] for r in results], results[-1][2])


def _runs(samples: list[float]) -> str:
    return " ".join(f"{sample:.3f}" for sample in samples)


def sources(stdout: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for offer in json.loads(stdout):
        found.setdefault(offer["provider"], set()).add(offer["source"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--delay-ms", type=float, default=300)
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    workdir = Path(tempfile.mkdtemp(prefix="gpuctl-bench-"))
    runpod = RunPodStandin(api_key=RUNPOD_TEST_KEY, delay_s=delay)
    lambda_ = LambdaStandin(api_key=LAMBDA_TEST_KEY, delay_s=delay)
    with ExitStack() as stack:
        stack.enter_context(runpod)
        stack.enter_context(lambda_)
        ec2_url = stack.enter_context(serving(delayed_replaying_proxy(stack.enter_context(moto_server()), delay)))
        price_url = stack.enter_context(serving(pricing_endpoint(delay)))
        env = {
            "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(workdir / "home"), "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "COLUMNS": "160", "GPUCTL_CONFIG_DIR": str(workdir / "config"), "GPUCTL_CACHE_DIR": str(workdir / "cache"),
            "GPUCTL_RUNPOD_API_URL": runpod.url, "RUNPOD_API_KEY": RUNPOD_TEST_KEY,
            "GPUCTL_LAMBDA_API_URL": lambda_.url, "LAMBDA_API_KEY": LAMBDA_TEST_KEY,
            "AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(workdir / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-creds"),
            "AWS_ENDPOINT_URL": ec2_url, "AWS_ENDPOINT_URL_PRICING": price_url,
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("PYENV")})
        launchers = {"python -m gpuctl": [sys.executable, "-m", "gpuctl"]}
        script = Path(sys.executable).with_name("gpuctl")  # the console script pip wrote
        if script.exists():
            launchers[f"console script {script}"] = [str(script)]
        shim = next((Path(d) / "gpuctl" for d in os.environ["PATH"].split(os.pathsep)
                     if Path(d).name == "shims" and (Path(d) / "gpuctl").exists()), None)
        if shim:
            launchers[f"pyenv shim {shim}"] = [str(shim)]
        module = launchers["python -m gpuctl"]

        *_, warm_out = run([*module, "--json", "prices", "--refresh"], env)  # moto's first answers are recorded here
        assert sources(warm_out) == {"aws": {"live"}, "lambda": {"live"}, "runpod": {"live"}}, sources(warm_out)
        print(f"each provider answers every request after {args.delay_ms:.0f} ms; medians of {args.runs} runs")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start\n")
        alone = {name: timed([*module, "--json", "prices", "--refresh", "--provider", name], env, args.runs).wall
                 for name in ("runpod", "lambda", "aws")}
        print("python -m gpuctl prices --refresh --provider NAME (one provider): "
              + ", ".join(f"{n} {t:.3f} s" for n, t in alone.items()) + f"; sum {sum(alone.values()):.3f} s\n")
        for label, argv in launchers.items():
            start_up = timed([*argv, "--version"], env, args.runs)
            fanout = timed([*argv, "--json", "prices", "--refresh"], env, args.runs)
            assert sources(fanout.stdout) == {"aws": {"live"}, "lambda": {"live"}, "runpod": {"live"}}
            cached = timed([*argv, "prices"], env, args.runs)
            cached_json = timed([*argv, "--json", "prices"], env, 1)
            assert sources(cached_json.stdout) == {"aws": {"cache"}, "lambda": {"cache"}, "runpod": {"cache"}}
            print(f"{label}   (medians: wall, and CPU user+sys of the gpuctl process; "
                  f"load average {os.getloadavg()[0]:.2f})")
            for what, timing in (("--version (start-up alone)", start_up), ("prices --refresh (3 live)", fanout),
                                 ("prices (warm cache, table)", cached)):
                print(f"  {what:28s} {timing.wall:6.3f} s  cpu {timing.cpu:.3f} s   runs: {_runs(timing.samples)}")
            print()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
