"""The local end of an SSH tunnel passes an engine's small writes on at once (no Nagle delay)."""

from __future__ import annotations

import socket
import statistics
import threading
import time

from gpuctl.host.tunnel import forward_local

ROUND_TRIPS = 7


class _Transport:
    """A paramiko transport whose channels lead to an engine answering each request in two small writes, as an
    HTTP server writes its headers and then the first event of a stream."""

    def open_channel(self, kind: str, remote: tuple[str, int], address: tuple[str, int],
                     timeout: float) -> socket.socket:
        channel, engine = socket.socketpair()
        threading.Thread(target=self._serve, args=(engine,), daemon=True).start()
        return channel

    @staticmethod
    def _serve(engine: socket.socket) -> None:
        with engine:
            while engine.recv(65536):
                engine.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                time.sleep(0.002)
                engine.sendall(b"data: first token\n\n")


def test_the_first_event_is_not_held_back_for_the_clients_delayed_ack() -> None:
    # With Nagle's algorithm on the tunnel's local socket, the second write waits for the ACK of the first,
    # which the client delays by 40 ms: every TTFT measured through a tunnel read about 40 ms high.
    with forward_local(_Transport(), "127.0.0.1", 8000) as port, \
            socket.create_connection(("127.0.0.1", port)) as client:
        waits = []
        for _ in range(ROUND_TRIPS):
            start = time.monotonic()
            client.sendall(b"POST /v1/completions HTTP/1.1\r\n\r\n")
            received = b""
            while b"first token" not in received:
                received += client.recv(65536)
            waits.append((time.monotonic() - start) * 1000)
    assert statistics.median(waits) < 20, f"milliseconds to the first event: {[round(w, 1) for w in waits]}"
