"""Local port forwarding over an SSH transport (what ``ssh -L`` does), for engines bound to a host's loopback."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any


class _Forwarder:
    def __init__(self, transport: Any, remote_host: str, remote_port: int) -> None:
        self.transport = transport
        self.remote = (remote_host, remote_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # lets serve() notice close(); accept() ignores a close from elsewhere
        self.port: int = self.listener.getsockname()[1]
        self.closing = threading.Event()
        self.open: set[Any] = set()
        self.lock = threading.Lock()

    def serve(self) -> None:
        while not self.closing.is_set():
            try:
                client, address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            client.settimeout(None)
            # an engine's stream is small writes: with Nagle each would wait for the client's delayed ACK
            # (40 ms), and every TTFT measured through the tunnel would read that much high
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, address), daemon=True).start()

    def _pump(self, client: socket.socket, address: tuple[str, int]) -> None:
        try:
            channel = self.transport.open_channel("direct-tcpip", self.remote, address, timeout=15)
        except Exception:  # refused on the host side: the engine is not listening yet
            client.close()
            return
        with self.lock:
            self.open.update((client, channel))
        try:
            ends = [client, channel]
            while not self.closing.is_set():
                readable, _, _ = select.select(ends, [], [], 0.5)
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (channel if end is client else client).sendall(data)
        except OSError:
            return
        finally:
            with self.lock:
                self.open.difference_update((client, channel))
            channel.close()
            client.close()

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        with self.lock:
            ends = list(self.open)
        for end in ends:
            end.close()


@contextlib.contextmanager
def forward_local(transport: Any, remote_host: str, remote_port: int) -> Iterator[int]:
    """Listen on 127.0.0.1:<free port>, forward each connection to ``remote_host:remote_port``."""
    forwarder = _Forwarder(transport, remote_host, remote_port)
    thread = threading.Thread(target=forwarder.serve, name=f"gpuctl-forward-{remote_port}", daemon=True)
    thread.start()
    try:
        yield forwarder.port
    finally:
        forwarder.close()
        thread.join(timeout=2)
