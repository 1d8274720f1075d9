"""A stand-in for Tiny Cloud's API, for tests (standard library only).

Endpoints (``Authorization: Bearer KEY`` on every one, else 401):

- ``GET /v1/machine-types``: ``{"types": [{name, gpu, gpus, usd_per_hour, zone, in_stock}]}``
- ``POST /v1/machines`` ``{type, zone, name, ssh_key, labels, client_token}``: 201 and the machine; the
  same ``client_token`` again: 200 and the same machine; a type out of stock: 409; unknown: 400
- ``GET /v1/machines[?label=KEY:VALUE...]``: ``{"machines": [...]}`` carrying every label asked for
- ``GET /v1/machines/{id}``, ``DELETE /v1/machines/{id}``: the machine, or 404 once deleted

A machine is ``starting`` without an address for its first ``--boot-polls`` reads, then ``running`` at
``--machine-host`` (port ``--ssh-port``, user ``--ssh-user``); its SSH key is appended to
``--authorized-keys`` as cloud-init would do on a real machine. Run it::

    python tests/standin.py --key KEY [--port 0] [--machine-host 10.0.0.5 --authorized-keys FILE]

It prints ``listening on URL`` once it serves, and stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TYPES = [
    {"name": "tc.l40s.1x", "gpu": "NVIDIA L40S", "gpus": 1, "usd_per_hour": 0.99, "zone": "tc-west-1",
     "in_stock": True},
    {"name": "tc.h100.8x", "gpu": "NVIDIA H100 80GB HBM3", "gpus": 8, "usd_per_hour": 23.6, "zone": "tc-west-1",
     "in_stock": False},
    {"name": "tc.mi300.1x", "gpu": "AMD Instinct MI300X", "gpus": 1, "usd_per_hour": 2.1, "zone": "tc-east-1",
     "in_stock": True},
]


@dataclass
class World:
    key: str
    machine_host: str = "127.0.0.1"
    ssh_port: int = 22
    ssh_user: str = "root"
    boot_polls: int = 1
    authorized_keys: str | None = None
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        token = body.get("client_token")
        same = next((m for m in self.machines.values() if token and m["client_token"] == token), None)
        if same is not None:
            return 200, self.view(same)
        kind = next((t for t in TYPES if t["name"] == body.get("type") and t["zone"] == body.get("zone")), None)
        if kind is None:
            return 400, {"error": f"no machine type {body.get('type')} in {body.get('zone')}"}
        if not kind["in_stock"]:
            return 409, {"error": f"{kind['name']} is out of stock in {kind['zone']}"}
        machine = {"id": f"m-{len(self.machines) + 1}", "name": body.get("name") or "", "type": kind["name"],
                   "gpu": kind["gpu"], "gpus": kind["gpus"], "zone": kind["zone"], "labels": body.get("labels") or {},
                   "usd_per_hour": kind["usd_per_hour"], "client_token": token, "deleted": False}
        self.machines[machine["id"]] = machine
        self.reads[machine["id"]] = 0
        if self.authorized_keys and body.get("ssh_key"):
            with open(self.authorized_keys, "a", encoding="utf-8") as keys:
                keys.write(body["ssh_key"].strip() + "\n")
        return 201, self.view(machine)

    def view(self, machine: dict[str, Any]) -> dict[str, Any]:
        booted = self.reads[machine["id"]] >= self.boot_polls
        shown = {k: v for k, v in machine.items() if k not in ("client_token", "deleted")}
        return {**shown, "state": "running" if booted else "starting", "ip": self.machine_host if booted else None,
                "ssh_port": self.ssh_port, "ssh_user": self.ssh_user}

    def read(self, machine_id: str) -> dict[str, Any] | None:
        machine = self.machines.get(machine_id)
        if machine is None or machine["deleted"]:
            return None
        self.reads[machine_id] += 1
        return self.view(machine)

    def live(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [self.view(m) for m in self.machines.values()
                if not m["deleted"] and all(m["labels"].get(k) == v for k, v in labels.items())]


class Handler(BaseHTTPRequestHandler):
    world: World

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.world.key}":
            return self._reply(401, {"error": "invalid API key"})
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        with self.world.lock:
            if (method, parts) == ("GET", ["v1", "machine-types"]):
                return self._reply(200, {"types": TYPES})
            if (method, parts) == ("POST", ["v1", "machines"]):
                return self._reply(*self.world.create(body))
            if (method, parts) == ("GET", ["v1", "machines"]):
                labels = dict(pair.split(":", 1) for pair in parse_qs(url.query).get("label", []))
                return self._reply(200, {"machines": self.world.live(labels)})
            if len(parts) == 3 and parts[:2] == ["v1", "machines"]:
                machine = self.world.read(parts[2])
                if machine is None:
                    return self._reply(404, {"error": f"no machine {parts[2]}"})
                if method == "DELETE":
                    self.world.machines[parts[2]]["deleted"] = True
                    return self._reply(204, None)
                return self._reply(200, machine)
        return self._reply(404, {"error": f"no route {method} {url.path}"})

    def _reply(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        self.wfile.write(data)


def serve(world: World, port: int = 0) -> ThreadingHTTPServer:
    """A server for ``world`` on 127.0.0.1 (``serve_forever`` it in a thread; its URL: ``url(server)``)."""
    handler = type("WorldHandler", (Handler,), {"world": world})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tiny Cloud API stand-in")
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--machine-host", default="127.0.0.1")
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--ssh-user", default="root")
    parser.add_argument("--boot-polls", type=int, default=1)
    parser.add_argument("--authorized-keys")
    args = parser.parse_args(argv)
    server = serve(World(key=args.key, machine_host=args.machine_host, ssh_port=args.ssh_port,
                         ssh_user=args.ssh_user, boot_polls=args.boot_polls, authorized_keys=args.authorized_keys),
                   args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on {url(server)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
