"""Entry point of the fake engine image: accepts vLLM's, SGLang's and TGI's command lines, serves mock_openai.

Runs inside the container (stdlib only). It reads the flags gpuctl's engine specs pass
(``vllm serve MODEL --served-model-name N --host H --port P``, ``--model-id M --hostname H --port P``,
``python3 -m sglang.launch_server --model-path M --served-model-name N --host H --port P``) and ignores
the rest, takes the API key from ``VLLM_API_KEY`` / ``API_KEY`` or ``--api-key`` like the real servers,
and runs the mock in this same process, so the key never lands in any process's command line.

Test knobs (environment): ``FAKE_ENGINE_EXIT="CODE message"`` crashes at start after printing the
message (only on node ``FAKE_ENGINE_EXIT_RANK`` when that is set: rank 0 then waits for it to join and
never serves, as vLLM's does); ``FAKE_ENGINE_MOCK_ARGS`` adds
mock_openai flags (e.g. ``--ttft-ms 50``); ``FAKE_ENGINE_SPEED`` gives each GPU model a speed
(engine_speed.py), which then paces every answer.

It serves ``/metrics`` in the format of the engine its command line starts (engine_metrics.py;
``FAKE_ENGINE_METRICS`` chooses another, or ``none``).

vLLM's multi-node mode (``--nnodes N``) is checked the way vLLM would need it: ``--pipeline-parallel-size
N``, a ``--node-rank`` below N and a ``--master-addr``; rank 0 serves (no ``--headless``) and its master
address must be one of its own (it binds there); any other rank must be ``--headless`` and then serves
nothing: it prints that it joined and waits to be stopped. A command vLLM would refuse exits 2.
"""

from __future__ import annotations

import os
import shlex
import sys

_WITH_VALUE = {"--model", "--model-id", "--model-path", "--served-model-name", "--host", "--hostname", "--port",
               "-p", "--api-key", "--nnodes", "--node-rank", "--master-addr", "--pipeline-parallel-size"}


def translate(argv: list[str]) -> tuple[list[str], str]:
    """mock_openai's arguments for an engine command line, and the model it serves."""
    args = list(argv)
    if args and args[0] == "serve":
        args = args[1:]
    found: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in _WITH_VALUE:
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
            found[name] = value
            i += 1 if eq else 2
            continue
        if i == 0 and not arg.startswith("-"):
            positional.append(arg)
        i += 1
    model = (found.get("--served-model-name") or found.get("--model") or found.get("--model-id")
             or found.get("--model-path") or (positional[0] if positional else "mock-model"))
    host = found.get("--host") or found.get("--hostname") or "0.0.0.0"
    port = found.get("--port") or found.get("-p") or "8000"
    api_key = found.get("--api-key") or os.environ.get("VLLM_API_KEY") or os.environ.get("API_KEY") or ""
    mock = ["--host", host, "--port", port, "--model", model]
    if api_key:
        mock += ["--api-key", api_key]
    return mock + shlex.split(os.environ.get("FAKE_ENGINE_MOCK_ARGS", "")), model


def node_rank(argv: list[str]) -> int | None:
    """The ``--node-rank`` of a multi-node command line (None on one machine); exit 2 for what vLLM would refuse."""
    if "--nnodes" not in argv:
        return None

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else ""

    nodes, rank, master = value("--nnodes"), value("--node-rank"), value("--master-addr")
    problems = []
    if not nodes.isdigit() or int(nodes) < 2:
        problems.append(f"--nnodes {nodes!r} is not a node count of 2 or more")
    elif value("--pipeline-parallel-size") != nodes:
        problems.append(f"--pipeline-parallel-size {value('--pipeline-parallel-size')!r} is not one stage per node")
    if not rank.isdigit() or (nodes.isdigit() and int(rank) >= int(nodes)):
        problems.append(f"--node-rank {rank!r} is not below --nnodes {nodes}")
    if not master:
        problems.append("no --master-addr")
    elif rank == "0" and not _local(master):
        problems.append(f"rank 0's --master-addr {master} is not an address of this machine")
    if rank == "0" and "--headless" in argv:
        problems.append("rank 0 serves the API: it cannot be --headless")
    if rank not in ("", "0") and "--headless" not in argv:
        problems.append(f"rank {rank} must be --headless")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr, flush=True)
        sys.exit(2)
    return int(rank)


def _local(address: str) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _wait_to_be_stopped() -> int:
    import signal
    import time

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def main() -> int:
    argv = sys.argv[1:]
    rank = node_rank(argv)
    crash = os.environ.get("FAKE_ENGINE_EXIT")
    only = os.environ.get("FAKE_ENGINE_EXIT_RANK")
    crash_rank = only if crash else None
    if crash and only is not None and str(rank) != only:
        crash = None
    if crash:
        code, _, message = crash.partition(" ")
        print(message or "fake engine crashed", file=sys.stderr, flush=True)
        return int(code)
    mock_args, model = translate(argv)
    if rank:  # a headless node: it holds its pipeline stage and serves nothing
        print(f"INFO fake engine: rank {rank} joined {argv[argv.index('--master-addr') + 1]} headless", flush=True)
        return _wait_to_be_stopped()
    if rank == 0 and crash_rank is not None and crash_rank != "0":
        # as vLLM's rank 0 does, it serves only once every rank joined: the one that crashed never does
        print(f"INFO fake engine: waiting for rank {crash_rank} to join", flush=True)
        return _wait_to_be_stopped()
    print(f"INFO fake engine: serving {model} (GPUs: {os.environ.get('NVIDIA_VISIBLE_DEVICES', 'none')})",
          flush=True)
    import engine_metrics
    import engine_speed
    import mock_openai

    engine_metrics.install(engine_metrics.format_for(argv), mock_openai.EXTRA_ROUTES)
    try:
        configured = engine_speed.configured_speed()
    except ValueError as exc:
        print(f"ERROR fake engine: {exc}", file=sys.stderr, flush=True)
        return 1
    if configured is None:
        return mock_openai.main(mock_args)
    gpu, speed = configured
    print(f"INFO fake engine: {gpu} at {speed}", flush=True)
    return mock_openai.main(mock_args, engine_speed.speed_mock(speed))


if __name__ == "__main__":
    sys.exit(main())
