"""The load generator against the mock OpenAI server, whose recorded timestamps are the ground truth.

Tolerances are loose on purpose (the suite shares two cores with other tests); they still catch the
mistakes that matter: a role-only delta timed as the first token, per-event gaps reported as
per-token gaps, tokens counted per event, failures counted as successes, a concurrency limit not kept.
The tight figures are measured by benchmarks/bench_accuracy.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuctl.bench import loadgen
from tests.standins.mock_openai import MockProcess, ground_truth

pytestmark = pytest.mark.integration


def bench(mock: MockProcess, **load: Any) -> dict[str, Any]:
    settings = {"url": mock.url, "model": "mock-model", "input_len": 8, "output_len": 8, "progress": False, **load}
    report = loadgen.run(loadgen.LoadSpec.from_dict(settings))
    assert len(report["runs"]) == 1
    return report["runs"][0]


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_ttft_and_itl_match_the_server_at_several_concurrencies(mock: MockProcess, concurrency: int) -> None:
    mock.configure(ttft_ms=50, itl_ms=5)
    run = bench(mock, concurrency=[concurrency], requests=max(6, 2 * concurrency), warmup=concurrency,
                output_len=12)
    truth = ground_truth(mock.stats()["records"], skip=concurrency)
    assert run["requests_ok"] == max(6, 2 * concurrency) and run["requests_failed"] == 0
    # never below the server's own figure; above it by at most what the client's event loop lagged (a
    # loaded machine delays reading the first token by that much), plus 15 ms
    server_ttft = 1000 * statistics.fmean(truth["ttft"])
    loop_lag = (run["client"]["loop_lag_ms"] or {}).get("max", 0.0)
    assert server_ttft - 5 <= run["ttft_ms"]["mean"] <= server_ttft + 15 + loop_lag, run["client"]
    assert run["itl_ms"]["mean"] == pytest.approx(1000 * statistics.fmean(truth["itl"]), abs=2)
    assert run["output_tokens"] == 12 * run["requests_ok"]


def test_several_tokens_per_event_give_per_token_itl(mock: MockProcess) -> None:
    mock.configure(itl_ms=4, tokens_per_event=4)  # an event every 16 ms carrying 4 tokens
    run = bench(mock, concurrency=[2], requests=4, output_len=16)
    assert run["itl_ms"]["mean"] == pytest.approx(4.0, abs=1.5)
    assert run["output_tokens"] == 4 * 16
    # TPOT spreads 3 event gaps (48 ms) over the 15 tokens after the first
    assert run["tpot_ms"]["mean"] == pytest.approx(48 / 15, abs=1.5)


def test_role_only_first_delta_does_not_count_as_the_first_token(mock: MockProcess) -> None:
    mock.configure(ttft_ms=40, itl_ms=2, role_delta=True)
    run = bench(mock, endpoint="chat", concurrency=[1], requests=3)
    assert run["requests_ok"] == 3
    assert 38 <= run["ttft_ms"]["p50"] <= 80  # the role delta left at once


def test_without_usage_tokens_are_counted_per_event_and_said_to_be(mock: MockProcess) -> None:
    mock.configure(usage=False)
    run = bench(mock, concurrency=[2], requests=4, output_len=9)
    assert (run["output_tokens"], run["output_tokens_estimated"], run["short_responses"]) == (36, 4, 0)
    assert (run["output_tokens_source"], run["input_tokens_source"]) == ("counted", "counted")
    assert run["input_tokens"] == 4 * 8  # the prompt length the client built


def test_without_usage_several_tokens_per_event_read_as_short(mock: MockProcess) -> None:
    # nothing tells the client how many tokens an event carried: it counts one, and says so
    mock.configure(usage=False, tokens_per_event=3)
    run = bench(mock, concurrency=[2], requests=4, output_len=9)
    assert (run["output_tokens"], run["output_tokens_estimated"], run["short_responses"]) == (12, 4, 4)


def test_without_usage_an_early_stop_is_counted_and_flagged(mock: MockProcess) -> None:
    mock.configure(usage=False, stop_after=5)
    run = bench(mock, concurrency=[1], requests=3, output_len=20, ignore_eos=False)
    assert (run["output_tokens"], run["output_tokens_estimated"]) == (15, 3)


def test_http_errors_and_cut_streams_are_failures_by_cause(mock: MockProcess) -> None:
    mock.configure(fail_every=5, cut_every=7, itl_ms=1)
    run = bench(mock, concurrency=[2], requests=14, warmup=0, output_len=10)
    assert run["errors"] == {"http 500": 2, "broken stream": 2}
    assert (run["requests_ok"], run["requests_failed"]) == (10, 4)
    assert "injected failure" in run["error_examples"]["http 500"]


def test_a_request_without_an_answer_times_out(mock: MockProcess) -> None:
    mock.configure(hang_every=3)
    run = bench(mock, concurrency=[3], requests=6, warmup=0, timeout_s=0.5)
    assert run["errors"] == {"timeout": 2}
    assert run["requests_ok"] == 4


def test_the_concurrency_limit_is_kept(mock: MockProcess) -> None:
    mock.configure(ttft_ms=20, itl_ms=1)
    run = bench(mock, concurrency=[3], requests=15)
    assert mock.stats()["max_in_flight"] == 3
    assert run["max_in_flight"] == 3


def test_a_rate_with_a_concurrency_limit_waits_for_slots(mock: MockProcess) -> None:
    mock.configure(ttft_ms=30)
    run = bench(mock, concurrency=[2], rate=[200.0], requests=10, warmup=0)
    assert mock.stats()["max_in_flight"] == 2
    assert run["requests_ok"] == 10
    assert run["ttft_ms"]["p99"] < 90  # waiting for a slot (up to 4 x 30 ms here) is not latency


def test_poisson_arrivals_keep_the_planned_rate(mock: MockProcess) -> None:
    run = bench(mock, concurrency=[None], rate=[40.0], requests=80, warmup=0, seed=7)
    planned = loadgen.arrival_offsets(80, 40.0, 1.0, 7)
    recv = sorted(r["recv"] for r in mock.stats()["records"])
    assert run["requests_ok"] == 80
    # the server saw the planned spacing (the seed fixes it), and the rate is the one asked for
    assert recv[-1] - recv[0] == pytest.approx(planned[-1] - planned[0], abs=0.1)
    assert 79 / (recv[-1] - recv[0]) == pytest.approx(40.0, rel=0.25)


def test_a_duration_run_stops_sending_at_the_deadline(mock: MockProcess) -> None:
    mock.configure(ttft_ms=10)
    run = bench(mock, concurrency=[2], duration_s=0.5)
    assert 0.5 <= run["duration_s"] < 1.0
    assert 20 <= run["requests_ok"] <= 110


def test_a_jsonl_dataset_sets_prompts_and_lengths(mock: MockProcess, tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "one two three", "max_tokens": 3}) + "\n\n"
                    + json.dumps({"messages": [{"role": "user", "content": "four five"}]}) + "\n")
    run = bench(mock, endpoint="chat", dataset=str(data), concurrency=[1], requests=4, warmup=0, output_len=6)
    assert run["output_tokens"] == 2 * 3 + 2 * 6
    assert run["input_tokens"] == 2 * (3 + 4) + 2 * (2 + 4)  # the mock counts words; 4 are each prompt's tag


def test_the_module_runs_as_a_script_with_settings_on_stdin(mock: MockProcess) -> None:
    mock.configure(api_key="sk-standin-9d2f")
    config = {"url": mock.url, "api_key": "sk-standin-9d2f", "requests": 3, "output_len": 4, "input_len": 4}
    done = subprocess.run([sys.executable, loadgen.__file__, "--config", "-", "--json", "-q"],
                          input=json.dumps(config), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sk-standin" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == "mock-model"  # found through /v1/models
    assert report["runs"][0]["requests_ok"] == 3


def test_a_wrong_key_is_an_http_401_failure(mock: MockProcess) -> None:
    mock.configure(api_key="right")
    run = bench(mock, api_key="wrong", requests=2, warmup=0)
    assert run["errors"] == {"http 401": 2}


def test_the_health_bench_of_up_is_a_few_sequential_requests(mock: MockProcess) -> None:
    from gpuctl.bench.runner import SMOKE_REQUESTS, smoke_bench

    mock.configure(ttft_ms=15)
    run = smoke_bench(mock.url, price_per_hour=1.0)
    assert (run.concurrency, run.requests_ok, run.requests_failed) == (1, SMOKE_REQUESTS, 0)
    assert run.ttft_ms is not None and 15 <= run.ttft_ms.p50 < 60
    assert run.cost_per_1m_output_tokens == pytest.approx(1e6 / (3600 * run.output_tokens_per_s))
    assert mock.stats()["max_in_flight"] == 1
