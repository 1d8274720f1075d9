"""The fake engine's GPU speed (tests/fakehost/engine_speed.py): which GPU it is on, its KV-cache budget, its steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fakehost.engine_speed import GpuPacing, SimulatedGpu, Speed, configured_speed

L40S = {"prefill_tokens_per_s": 1e6, "decode_ms": 2.0, "decode_ms_per_sequence": 0.5, "kv_cache_tokens": 100}


def _gpus(tmp_path: Path, name: str = "NVIDIA L40S") -> str:
    path = tmp_path / "gpus.tsv"
    path.write_text(f"{name}\t46068\t0\t0\tGPU-0-fake\n")
    return str(path)


def test_the_speed_of_the_gpu_the_hook_shows(tmp_path: Path) -> None:
    table = json.dumps({"NVIDIA L40S": L40S, "NVIDIA H100 80GB HBM3": {**L40S, "decode_ms": 1.0}})
    assert configured_speed({}, _gpus(tmp_path)) is None, "no table: the mock's own timing"
    gpu, speed = configured_speed({"FAKE_ENGINE_SPEED": table}, _gpus(tmp_path)) or ("", None)
    assert (gpu, speed) == ("NVIDIA L40S", Speed(**L40S))
    with pytest.raises(ValueError, match="no speed for NVIDIA A40"):
        configured_speed({"FAKE_ENGINE_SPEED": table}, _gpus(tmp_path, "NVIDIA A40"))
    with pytest.raises(ValueError, match="sees no GPU"):
        configured_speed({"FAKE_ENGINE_SPEED": table}, str(tmp_path / "absent.tsv"))
    with pytest.raises(ValueError, match=r"missing \['kv_cache_tokens'\]"):
        Speed.parse({k: v for k, v in L40S.items() if k != "kv_cache_tokens"})


def test_requests_wait_for_the_kv_cache_first_come_first_served() -> None:
    async def scenario() -> None:
        gpu = SimulatedGpu(Speed(**L40S))
        await gpu.admit(60)
        second = asyncio.create_task(gpu.admit(60))
        third = asyncio.create_task(gpu.admit(30))  # would fit now, but waits its turn
        await asyncio.sleep(0)
        assert not second.done() and not third.done()
        gpu.release(60)
        await asyncio.wait_for(asyncio.gather(second, third), 5)
        assert gpu.kv_used == 90
        gpu.release(60)
        gpu.release(30)
        await gpu.admit(500)  # larger than the whole cache: runs alone
        assert gpu.kv_used == 500

    asyncio.run(scenario())


def test_a_client_that_leaves_while_waiting_holds_nothing() -> None:
    async def scenario() -> None:
        gpu = SimulatedGpu(Speed(**L40S))
        await gpu.admit(80)
        waiting = asyncio.create_task(gpu.admit(80))
        await asyncio.sleep(0)
        waiting.cancel()
        gpu.release(80)
        await asyncio.gather(waiting, return_exceptions=True)
        assert gpu.kv_used == 0

    asyncio.run(scenario())


def test_decode_steps_slow_down_as_requests_share_the_gpu() -> None:
    async def scenario() -> None:
        gpu = SimulatedGpu(Speed(**{**L40S, "decode_ms": 0.0, "decode_ms_per_sequence": 0.1}))
        pacings = [GpuPacing(gpu, 0.0, 10, 5) for _ in range(3)]
        await asyncio.gather(*(p.wait(0) for p in pacings))  # all three prefilled: decoding
        assert gpu.running == 3 and gpu.kv_used == 30
        assert gpu.step_s() == pytest.approx(0.0003)
        await pacings[0].wait(4)
        assert pacings[0].token == 4
        for pacing in pacings:
            pacing.done()
        assert (gpu.running, gpu.kv_used) == (0, 0)

    asyncio.run(scenario())
