"""The load generator against servers that behave like real ones, not like the ideal mock.

Each quirk is one the client met on llama.cpp's ``llama-server`` (benchmarks/bench_real_server.py
measures the real thing): a kept-alive connection the server closes after each stream, a prefix cache
that answers reused prompts faster, streams that end without a finish reason, a context too small for
the prompt and the output asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpuctl.bench import loadgen
from tests.standins.mock_openai import MockProcess

pytestmark = pytest.mark.integration


def bench(mock: MockProcess, **load: Any) -> dict[str, Any]:
    settings = {"url": mock.url, "model": "mock-model", "input_len": 8, "output_len": 8, "progress": False, **load}
    return loadgen.run(loadgen.LoadSpec.from_dict(settings))


# -- a server that closes each kept-alive connection after one stream ---------------------------------
@pytest.mark.parametrize(("endpoint", "concurrency"), [("completions", 1), ("completions", 4), ("chat", 16)])
def test_a_connection_closed_after_each_stream_loses_no_request(mock: MockProcess, endpoint: str,
                                                                concurrency: int) -> None:
    mock.configure(close_after_stream=True, itl_ms=1)
    requests = 2 * concurrency + 6
    run = bench(mock, endpoint=endpoint, concurrency=[concurrency], requests=requests)["runs"][0]
    stats = mock.stats()
    assert stats["dropped"] > 0  # the quirk was met: requests went out on connections the server had dropped
    assert (run["requests_ok"], run["requests_failed"], run["errors"]) == (requests, 0, {})
    assert run["retried"] >= 1
    # every request the server answered was counted once: warm-up + measured, none sent twice
    assert stats["requests"] == requests + concurrency


def test_a_request_that_fails_on_a_fresh_connection_is_not_sent_again(mock: MockProcess) -> None:
    mock.configure(fail_every=2)
    run = bench(mock, concurrency=[1], requests=6, warmup=0)["runs"][0]
    assert run["errors"] == {"http 500": 3} and run["retried"] == 0
    assert mock.stats()["requests"] == 6


# -- fresh prompts: no prefix cache hit across points or runs ------------------------------------------
def _cached(mock: MockProcess) -> list[int]:
    return [r["cached_tokens"] for r in mock.stats()["records"]]


def test_the_points_of_a_sweep_send_different_prompts(mock: MockProcess) -> None:
    mock.configure(prefix_cache=True, prefill_ms_per_token=0.5, cache_block=4)
    report = bench(mock, concurrency=[1, 2], requests=6, input_len=64, output_len=2)
    assert _cached(mock) == [0] * (1 + 6 + 2 + 6)  # warm-up and measured requests of both points
    first, second = report["runs"]
    # a reused prompt would answer ~32 ms sooner: TTFT stays that of an uncached prefill
    assert second["ttft_ms"]["p50"] > 0.6 * first["ttft_ms"]["p50"]
    assert first["cached_input_tokens"] == second["cached_input_tokens"] == 0


def test_two_runs_do_not_share_prompts_unless_the_seed_is_given(mock: MockProcess) -> None:
    mock.configure(prefix_cache=True, prefill_ms_per_token=0.5, cache_block=4)
    one = bench(mock, requests=4, input_len=64, output_len=2)
    two = bench(mock, requests=4, input_len=64, output_len=2)
    assert one["settings"]["salt"] != two["settings"]["salt"]
    assert one["settings"]["seed"] != two["settings"]["seed"]
    assert sum(_cached(mock)) == 0
    fresh_ttft = two["runs"][0]["ttft_ms"]["p50"]

    # the same seed reproduces a run exactly, prompts included: now the server's cache answers them
    again = bench(mock, requests=4, input_len=64, output_len=2, seed=two["settings"]["seed"])
    assert again["settings"]["salt"] == two["settings"]["salt"]
    assert again["runs"][0]["cached_input_tokens"] == 4 * 64  # every measured prompt came from the cache
    assert again["runs"][0]["ttft_ms"]["p50"] < 0.5 * fresh_ttft


def test_every_prompt_starts_unique_and_is_as_long_as_asked(mock: MockProcess) -> None:
    bench(mock, concurrency=[2], requests=40, input_len=12)
    records = mock.stats()["records"]
    assert {r["prompt_tokens"] for r in records} == {12}
    spec = loadgen.LoadSpec(url=mock.url, input_len=12, seed=5)
    pool = loadgen.PromptPool(spec, "mock-model", point=1, size=8)
    prompts = [json.loads(pool.request(i)[1])["prompt"].split() for i in range(300)]
    assert len({tuple(p[:3]) for p in prompts}) == 300  # no two requests share their first three tokens
    assert all(len(p) == 12 for p in prompts)


def test_prefix_share_gives_every_prompt_of_a_point_the_same_start(mock: MockProcess) -> None:
    mock.configure(prefix_cache=True, cache_block=4)
    report = bench(mock, concurrency=[1, 1], requests=5, warmup=1, input_len=32, prefix_share=0.5)
    cached = _cached(mock)
    # the first request of each point fills the cache with the shared half; every later one reuses it
    assert cached == [0, 16, 16, 16, 16, 16] * 2
    assert report["settings"]["prefix_share"] == 0.5
    assert [run["cached_input_tokens"] for run in report["runs"]] == [5 * 16, 5 * 16]


def test_prefix_share_needs_random_prompts(tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "a b"}\n')
    with pytest.raises(ValueError, match="prefix_share"):
        loadgen.LoadSpec.from_dict({"url": "http://127.0.0.1:9", "dataset": str(data), "prefix_share": 0.5})
    with pytest.raises(ValueError, match="prefix_share"):
        loadgen.LoadSpec.from_dict({"url": "http://127.0.0.1:9", "prefix_share": 1.5})


def test_dataset_prompts_are_fresh_too(mock: MockProcess, tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"prompt": " ".join(["same"] * 40)}) + "\n")
    mock.configure(prefix_cache=True, cache_block=4)
    bench(mock, dataset=str(data), requests=5, warmup=0)
    assert sum(_cached(mock)) == 0


# -- streams that end early, outputs shorter than asked -------------------------------------------------
def test_a_stream_ending_without_finish_reason_or_usage_is_a_truncated_failure(mock: MockProcess) -> None:
    mock.configure(truncate_every=2, itl_ms=1)
    run = bench(mock, concurrency=[2], requests=8, warmup=0, output_len=16)["runs"][0]
    assert run["errors"] == {"truncated": 4}
    assert (run["requests_ok"], run["requests_failed"]) == (4, 4)
    assert run["output_tokens"] == 4 * 16


@pytest.mark.parametrize("usage", [True, False])
def test_outputs_cut_short_by_the_context_are_counted_and_flagged(mock: MockProcess, usage: bool) -> None:
    mock.configure(context_len=40, usage=usage)
    run = bench(mock, requests=3, warmup=0, input_len=10, output_len=50)["runs"][0]
    assert (run["requests_ok"], run["short_responses"]) == (3, 3)
    assert run["output_tokens"] == 3 * 30  # what the server generated, never the 50 asked for
    assert run["output_tokens_requested"] == 3 * 50
    assert run["output_tokens_source"] == ("usage" if usage else "counted")


def test_an_early_stop_is_not_short_when_eos_is_allowed(mock: MockProcess) -> None:
    mock.configure(stop_after=5)
    run = bench(mock, requests=3, warmup=0, output_len=20, ignore_eos=False)["runs"][0]
    assert (run["output_tokens"], run["short_responses"]) == (15, 0)
