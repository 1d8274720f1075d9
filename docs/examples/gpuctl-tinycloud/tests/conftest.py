"""The stand-in Tiny Cloud API, started for each test that asks for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from standin import World, serve, url

KEY = "tc-test-key-0123456789"


@pytest.fixture
def tinycloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A fresh stand-in; the provider is pointed at it with a valid key (as a user would: the variables)."""
    world = World(key=KEY, boot_polls=2)
    server = serve(world)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("TINYCLOUD_API_URL", url(server))
    monkeypatch.setenv("TINYCLOUD_API_KEY", KEY)
    try:
        yield world
    finally:
        server.shutdown()
        server.server_close()
