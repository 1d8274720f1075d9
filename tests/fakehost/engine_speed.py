"""A GPU's speed for the fake engine: prefill and decode rates and a KV-cache budget, per GPU model.

Runs inside the fake engine image (standard library only). ``FAKE_ENGINE_SPEED`` (the engine's
environment; tests set it through a recipe's engine env) maps GPU names, as nvidia-smi prints them,
to a speed::

    {"NVIDIA L40S": {"prefill_tokens_per_s": 20000, "decode_ms": 12, "decode_ms_per_sequence": 1,
                     "kv_cache_tokens": 4096}, ...}

The engine finds out which GPU it runs on the way a real one does, from what the NVIDIA hook put in
its container: the fake hosts' hook copies their GPU table to ``GPUS_FILE``. With a speed, the
engine behaves like a continuous-batching server on that GPU (``SimulatedGpu``):

* a request is admitted when its prompt plus its answer fit in what is left of the KV cache
  (``kv_cache_tokens``); later ones wait, first come first served;
* prompts are prefilled one at a time, ``prefill_tokens_per_s`` (uncached tokens only): that is
  its time to first token, plus any wait;
* then every running request gets one token per decode step, and a step takes
  ``decode_ms + decode_ms_per_sequence x running requests``: the more requests share the GPU, the
  slower each one's tokens and the higher the throughput of the whole.

Other features of the stand-in (a /metrics endpoint, say) can be added as further mixins of the
mock class the shim composes (see engine_shim.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from dataclasses import dataclass, fields

try:
    import mock_openai  # in the image, next to this file
except ImportError:  # on this machine (unit tests)
    from tests.standins import mock_openai

SPEED_ENV = "FAKE_ENGINE_SPEED"
#: where the fake NVIDIA hook puts the host's GPU table (tab-separated: name, memory, used, util, uuid)
GPUS_FILE = "/etc/fake-nvidia/gpus.tsv"


@dataclass(frozen=True)
class Speed:
    """How fast one GPU serves the fake model."""

    prefill_tokens_per_s: float
    decode_ms: float
    decode_ms_per_sequence: float
    kv_cache_tokens: int

    @classmethod
    def parse(cls, data: dict) -> Speed:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"speed keys: unknown {unknown}, missing {missing}")
        return cls(**data)


def gpu_names(path: str = GPUS_FILE) -> list[str]:
    """The GPUs of the container, as the hook exposed them (none without ``--gpus``)."""
    try:
        with open(path, encoding="utf-8") as table:
            return [line.split("\t", 1)[0] for line in table if line.strip()]
    except FileNotFoundError:
        return []


def configured_speed(environ: dict[str, str] | None = None, path: str = GPUS_FILE) -> tuple[str, Speed] | None:
    """The GPU this engine runs on and its speed; None when no speed is configured.

    A speed table that does not name this engine's GPU is an error (raised as ValueError), as a real
    engine that does not support a GPU fails at start.
    """
    raw = (environ if environ is not None else os.environ).get(SPEED_ENV)
    if not raw:
        return None
    table = json.loads(raw)
    names = gpu_names(path)
    if not names:
        raise ValueError(f"{SPEED_ENV} is set, but this container sees no GPU (run it with --gpus)")
    gpu = names[0]
    if gpu not in table:
        raise ValueError(f"{SPEED_ENV} has no speed for {gpu} (it knows {', '.join(sorted(table))})")
    return gpu, Speed.parse(table[gpu])


class SimulatedGpu:
    """The engine's one GPU: its KV-cache budget, its prefill queue and the requests decoding on it."""

    def __init__(self, speed: Speed) -> None:
        self.speed = speed
        self.kv_used = 0
        self.running = 0
        self.prefill = asyncio.Lock()
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def admit(self, tokens: int) -> None:
        """Wait until ``tokens`` of KV cache are free (first come first served), then hold them.

        A request larger than the whole cache runs alone, as an engine with a preempting scheduler would.
        """
        if not self._waiting and self._fits(tokens):
            self.kv_used += tokens
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((tokens, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # admitted just as the client left
                self.release(tokens)
            raise

    def release(self, tokens: int) -> None:
        self.kv_used -= tokens
        while self._waiting and self._fits(self._waiting[0][0]):
            need, future = self._waiting.popleft()
            if not future.done():
                self.kv_used += need
                future.set_result(None)

    def step_s(self) -> float:
        """One decode step with the requests running now."""
        return (self.speed.decode_ms + self.speed.decode_ms_per_sequence * self.running) / 1000

    def _fits(self, tokens: int) -> bool:
        return self.kv_used == 0 or self.kv_used + tokens <= self.speed.kv_cache_tokens


class GpuPacing(mock_openai.Pacing):
    """One response on a ``SimulatedGpu``: admitted, prefilled, then one token per decode step."""

    def __init__(self, gpu: SimulatedGpu, start: float, kv_tokens: int, prefill_tokens: int) -> None:
        self.gpu = gpu
        self.start = start
        self.kv_tokens = kv_tokens
        self.prefill_tokens = prefill_tokens
        self.timed = True
        self.token = -1  # the last token sent
        self.due = 0.0
        self.admitted = self.decoding = False

    async def wait(self, token: int) -> None:
        if self.token < 0:
            await mock_openai._sleep_until(self.start)
            await self.gpu.admit(self.kv_tokens)
            self.admitted = True
            async with self.gpu.prefill:
                await asyncio.sleep(self.prefill_tokens / self.gpu.speed.prefill_tokens_per_s)
            self.gpu.running += 1
            self.decoding = True
            self.token, self.due = 0, time.monotonic()
        while self.token < token:
            # each step against the response's own clock: a late wake-up does not slow the next token
            self.due += self.gpu.step_s()
            await mock_openai._sleep_until(self.due)
            self.token += 1

    def done(self) -> None:
        if self.decoding:
            self.gpu.running -= 1
        if self.admitted:
            self.gpu.release(self.kv_tokens)


def speed_mock(speed: Speed) -> type[mock_openai.Mock]:
    """The mock class serving every response at ``speed`` on one simulated GPU."""

    class SpeedMock(mock_openai.Mock):
        def __init__(self, settings: mock_openai.Settings) -> None:
            super().__init__(settings)
            self.gpu = SimulatedGpu(speed)

        def pacing(self, start: float, prompt_tokens: int, prefill_tokens: int, tokens: int) -> mock_openai.Pacing:
            return GpuPacing(self.gpu, start, prompt_tokens + tokens, prefill_tokens)

    return SpeedMock
