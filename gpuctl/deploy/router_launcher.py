"""Start ``vllm-router`` with its settings read from stdin, so its API key never appears in a command line.

Standard library plus the ``vllm-router`` package only: gpuctl runs this file with a Python that has the
package, on this machine or on the router's machine over SSH (the file's text goes as ``python3 -c``).
It reads one JSON object from stdin (the fields of ``vllm_router.router_args.RouterArgs`` gpuctl sets,
plus ``stop_after_seconds``: the service's TTL), then runs the router in this process until it is
stopped, or until the TTL ends (the replicas' own TTL watchdogs end them at the same time).
"""

import json
import os
import sys
import threading


def main() -> None:
    settings = json.loads(sys.stdin.readline())
    sys.stdin.close()
    stop_after = settings.pop("stop_after_seconds", None)
    if stop_after:
        timer = threading.Timer(float(stop_after), os._exit, args=(0,))
        timer.daemon = True
        timer.start()
    from vllm_router.launch_router import launch_router
    from vllm_router.router_args import RouterArgs

    launch_router(RouterArgs(**settings))


if __name__ == "__main__":
    main()
