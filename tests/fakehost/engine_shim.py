"""Entry point of the fake engine image: accepts vLLM's, SGLang's and TGI's command lines, serves mock_openai.

Runs inside the container (stdlib only). It reads the flags gpuctl's engine specs pass
(``vllm serve MODEL --served-model-name N --host H --port P``, ``--model-id M --hostname H --port P``,
``python3 -m sglang.launch_server --model-path M --served-model-name N --host H --port P``) and ignores
the rest, takes the API key from ``VLLM_API_KEY`` / ``API_KEY`` or ``--api-key`` like the real servers,
and runs the mock in this same process, so the key never lands in any process's command line.

Test knobs (environment): ``FAKE_ENGINE_EXIT="CODE message"`` crashes at start after printing the
message; ``FAKE_ENGINE_MOCK_ARGS`` adds mock_openai flags (e.g. ``--ttft-ms 50``); ``FAKE_ENGINE_SPEED``
gives each GPU model a speed (engine_speed.py), which then paces every answer.

It serves ``/metrics`` in the format of the engine its command line starts (engine_metrics.py;
``FAKE_ENGINE_METRICS`` chooses another, or ``none``).
"""

from __future__ import annotations

import os
import shlex
import sys

_WITH_VALUE = {"--model", "--model-id", "--model-path", "--served-model-name", "--host", "--hostname", "--port",
               "-p", "--api-key"}


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


def main() -> int:
    crash = os.environ.get("FAKE_ENGINE_EXIT")
    if crash:
        code, _, message = crash.partition(" ")
        print(message or "fake engine crashed", file=sys.stderr, flush=True)
        return int(code)
    mock_args, model = translate(sys.argv[1:])
    print(f"INFO fake engine: serving {model} (GPUs: {os.environ.get('NVIDIA_VISIBLE_DEVICES', 'none')})",
          flush=True)
    import engine_metrics
    import engine_speed
    import mock_openai

    engine_metrics.install(engine_metrics.format_for(sys.argv[1:]), mock_openai.EXTRA_ROUTES)
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
