"""What the plugin guard costs: one provider call made directly, and the same call through the guard
(``ProviderRegistry.create``), which runs bounded calls in a thread of their own and checks the answer.

Usage: python benchmarks/plugin_guard.py [--calls N]

Reports microseconds per call for ``credentials()`` (a bounded call, no network) and ``can()`` (a
declaration, read from the class), direct and guarded, plus the time to discover the installed
providers once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gpuctl.plugins import ProviderRegistry


def per_call_us(call: Callable[[], object], calls: int) -> float:
    call()  # warm: first-time imports and file reads are not the guard's
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    start = time.perf_counter()
    registry = ProviderRegistry.discover()
    print(f"discover {len(registry.names())} providers       {(time.perf_counter() - start) * 1000:8.1f} ms")
    from gpuctl.providers.capabilities import Capability

    direct, guarded = registry.classes["runpod"](), registry.create("runpod")
    for label, call in (("credentials() direct", direct.credentials), ("credentials() guarded", guarded.credentials),
                        ("can() direct", lambda: direct.can(Capability.LAUNCH)),
                        ("can() guarded", lambda: guarded.can(Capability.LAUNCH))):
        print(f"{label:28s} {per_call_us(call, args.calls):8.1f} us per call")


if __name__ == "__main__":
    main()
