"""Start ``vllm-router`` with its settings read from stdin, so its API key never appears in a command line.

Standard library plus the ``vllm-router`` package only: gpuctl runs this file with a Python that has the
package, on this machine or on the router's machine over SSH (the file's text goes as ``python3 -c``).
It reads one JSON object from stdin (the fields of ``vllm_router.router_args.RouterArgs`` gpuctl sets),
then runs the router in this process until it is stopped.
"""

import json
import sys


def main() -> None:
    settings = json.loads(sys.stdin.readline())
    sys.stdin.close()
    from vllm_router.launch_router import launch_router
    from vllm_router.router_args import RouterArgs

    launch_router(RouterArgs(**settings))


if __name__ == "__main__":
    main()
