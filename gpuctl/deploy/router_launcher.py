"""Start ``vllm-router`` with its settings read from stdin, so its API key never appears in a command line.

Standard library plus the ``vllm-router`` package only: gpuctl runs this file with a Python that has the
package, on this machine or on the router's machine over SSH (the file's text goes as ``python3 -c``).
It reads one JSON object from stdin (the fields of ``vllm_router.router_args.RouterArgs`` gpuctl sets,
plus ``stop_after_seconds``: the service's TTL), then runs the router in this process until it is
stopped, or until the TTL ends (the replicas' own TTL watchdogs end them at the same time).
"""

import json
import math
import signal
import sys


def main() -> None:
    settings = json.loads(sys.stdin.readline())
    sys.stdin.close()
    stop_after = settings.pop("stop_after_seconds", None)
    if stop_after:
        # the kernel ends the process then (SIGALRM's default action): the router's Rust loop holds the
        # interpreter, so no Python timer would ever run
        signal.alarm(math.ceil(float(stop_after)))
    from vllm_router.launch_router import launch_router
    from vllm_router.router_args import RouterArgs

    launch_router(RouterArgs(**settings))


if __name__ == "__main__":
    main()
