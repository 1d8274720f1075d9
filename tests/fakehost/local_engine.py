"""The fake engine (engine_shim + mock_openai + engine_metrics) as a process on this machine's loopback.

For tests that need an engine's HTTP API and its Prometheus /metrics but no container:

    with LocalEngine("serve", "org/model", mock_args="--ttft-ms 50") as engine:
        engine.url, engine.port, engine.complete(...)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalEngine:
    def __init__(self, *engine_args: str, mock_args: str = "", metrics: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*engine_args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent / 'standins'}",
                    "FAKE_ENGINE_MOCK_ARGS": mock_args, **({"FAKE_ENGINE_METRICS": metrics} if metrics else {})}
        self.process: subprocess.Popen[str] | None = None
        self.model = ""

    def start(self) -> LocalEngine:
        self.process = subprocess.Popen([sys.executable, str(HERE / "engine_shim.py"), *self.args], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("INFO fake engine: serving "):
                self.model = line.split("serving ", 1)[1].split(" (GPUs")[0]
            if line.startswith("READY"):
                return self
        self.stop()
        raise RuntimeError("the fake engine did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, path: str, payload: dict | None = None) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, whatever http_proxy says
        with opener.open(request, timeout=30) as response:
            return bytes(response.read())

    def complete(self, prompt: str = "hello there", max_tokens: int = 4, stream: bool = True) -> None:
        self.call("/v1/completions", {"model": self.model, "prompt": prompt, "max_tokens": max_tokens,
                                      "stream": stream})

    def stats(self) -> dict:
        return dict(json.loads(self.call("/_mock/stats")))

    def metrics(self) -> str:
        return self.call("/metrics").decode()
