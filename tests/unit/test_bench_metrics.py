"""The load generator's arithmetic: SSE parsing, per-token ITL, token counting, statistics, arrivals, cost."""

from __future__ import annotations

import json
import statistics

import pytest

from gpuctl.bench import loadgen
from gpuctl.bench.cost import cost_per_million
from gpuctl.bench.loadgen import (
    LoadSpec,
    Prompt,
    RequestResult,
    analyse_stream,
    apportion,
    arrival_offsets,
    parse_concurrency_list,
    parse_rate_list,
    parse_slo,
    percentile,
    sse_payloads,
    summarize_ms,
)

PROMPT = Prompt(head=b"{}", tail=b"", input_tokens=7, max_tokens=6)


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _text(text: str, finish: str | None = None) -> bytes:
    return _event({"choices": [{"index": 0, "text": text, "finish_reason": finish}]})


def _delta(delta: dict, finish: str | None = None) -> bytes:
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _usage(prompt: int, completion: int) -> bytes:
    return _event({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def _analyse(reads: list[tuple[float, bytes]], chat: bool = False, prompt: Prompt = PROMPT) -> RequestResult:
    result = RequestResult(prompt, due=0.0)
    result.sent = 0.0
    result.reads = reads
    return analyse_stream(result, chat)


def test_sse_payloads_joins_split_lines_and_stamps_the_completing_read() -> None:
    reads = [(1.0, b'data: {"a"'), (2.0, b": 1}\r\n\r\n: keep-alive\n\ndata: [DO"), (3.0, b"NE]\n\n")]
    assert sse_payloads(reads) == [(2.0, b'{"a": 1}'), (3.0, b"[DONE]")]


def test_one_token_per_event_gives_gaps_between_events() -> None:
    reads = [(0.100, _text(" a")), (0.120, _text(" b")), (0.145, _text(" c", "length") + _usage(7, 3)),
             (0.146, b"data: [DONE]\n\n")]
    r = _analyse(reads)
    assert r.error is None
    assert r.ttft == pytest.approx(0.100)
    assert r.itl == pytest.approx([0.020, 0.025])
    assert r.output_tokens == 3 and r.input_tokens == 7
    assert r.e2e == pytest.approx(0.146)
    assert r.tpot == pytest.approx((0.146 - 0.100) / 2)


def test_several_tokens_per_event_split_the_gap_per_token() -> None:
    # 3 tokens per event, 10 ms per token: events every 30 ms
    reads = [(0.1, _text(" a b c")), (0.13, _text(" d e f")), (0.16, _text(" g h i", "length")),
             (0.16, _usage(7, 9) + b"data: [DONE]\n\n")]
    r = _analyse(reads)
    assert r.output_tokens == 9
    assert r.itl == pytest.approx([0.01] * 6)  # 6 tokens after the first event, each 10 ms
    assert r.tpot == pytest.approx(0.06 / 8)


def test_role_only_first_delta_is_not_the_first_token() -> None:
    reads = [(0.001, _delta({"role": "assistant", "content": ""})), (0.100, _delta({"content": "Hi"})),
             (0.120, _delta({"content": " there"}, "stop") + _usage(7, 2) + b"data: [DONE]\n\n")]
    r = _analyse(reads, chat=True)
    assert r.ttft == pytest.approx(0.100)
    assert r.itl == pytest.approx([0.020])


def test_reasoning_content_counts_as_generated_text() -> None:
    reads = [(0.05, _delta({"reasoning_content": "think"})), (0.07, _delta({"content": "ok"}, "stop")),
             (0.07, b"data: [DONE]\n\n")]
    assert _analyse(reads, chat=True).ttft == pytest.approx(0.05)


def test_without_usage_tokens_are_counted_one_per_event_never_taken_from_max_tokens() -> None:
    # a "length" finish below max_tokens: the server's context ran out (or events carried several tokens)
    reads = [(0.1, _text(" a")), (0.2, _text(" c")), (0.3, _text(" e", "length")), (0.3, b"data: [DONE]\n\n")]
    r = _analyse(reads)
    assert (r.output_tokens, r.estimated, r.input_tokens, r.input_counted) == (3, True, 7, True)
    assert r.short  # 3 of the 6 asked
    assert r.itl == pytest.approx([0.1, 0.1])


def test_without_usage_an_early_stop_counts_events_and_says_so() -> None:
    reads = [(0.1, _text(" a")), (0.2, _text(" b", "stop")), (0.2, b"data: [DONE]\n\n")]
    r = _analyse(reads)
    assert (r.output_tokens, r.estimated) == (2, True)


@pytest.mark.parametrize(("ignore_eos", "finish", "tokens", "short"), [
    (True, "length", 6, False), (True, "length", 4, True), (True, "stop", 4, True),
    (False, "stop", 4, False), (False, "length", 4, True), (False, "length", 6, False),
])
def test_short_responses(ignore_eos: bool, finish: str, tokens: int, short: bool) -> None:
    prompt = Prompt(head=b"{}", tail=b"", input_tokens=7, max_tokens=6, ignore_eos=ignore_eos)
    reads = [(0.1, _text(" a")), (0.2, _text(" b", finish) + _usage(7, tokens)), (0.2, b"data: [DONE]\n\n")]
    r = _analyse(reads, prompt=prompt)
    assert (r.error, r.output_tokens, r.short, r.estimated) == (None, tokens, short, False)


def test_usage_gives_exact_counts_and_cached_prompt_tokens() -> None:
    usage = _event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                                             "prompt_tokens_details": {"cached_tokens": 8}}})
    r = _analyse([(0.1, _text(" a")), (0.2, _text(" b", "length") + usage), (0.2, b"data: [DONE]\n\n")])
    assert (r.input_tokens, r.cached_tokens, r.input_counted, r.output_tokens) == (9, 8, False, 2)


@pytest.mark.parametrize(("reads", "kind"), [
    ([(0.1, _event({"error": {"message": "boom"}}))], "stream error"),
    ([(0.1, _event({"object": "error", "message": "bad"}))], "stream error"),
    ([(0.1, _delta({"content": "a"})), (0.2, _delta({"content": "b"}))], "broken stream"),
    ([(0.1, _delta({"content": "a"})), (0.2, _delta({"content": "b"})), (0.3, b"data: [DONE]\n\n")], "truncated"),
    ([(0.1, _delta({"role": "assistant"})), (0.2, b"data: [DONE]\n\n")], "empty response"),
    ([(0.1, b"data: {not json\n\n")], "invalid response"),
    ([(0.1, b"<!DOCTYPE html><html><body>Welcome</body></html>")], "invalid response"),
    ([(0.1, b'{"choices": [{"message": {"content": "not streamed"}}]}')], "invalid response"),
    ([], "empty response"),
])
def test_bad_streams_are_failures(reads: list[tuple[float, bytes]], kind: str) -> None:
    r = _analyse(reads, chat=True)
    assert r.error == kind
    assert r.reads is None


def test_apportion_keeps_the_total() -> None:
    assert apportion(9, [3, 3, 3]) == [3, 3, 3]
    assert apportion(10, [1, 1, 2]) == [3, 2, 5]  # ties for the last token go to the earlier event
    assert sum(apportion(7, [5, 1, 1, 1])) == 7
    assert apportion(0, [1, 2]) == [0, 0]


def test_percentiles_interpolate_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert summarize_ms([0.001, 0.003]) == {"mean": 2.0, "p50": 2.0, "p90": 2.8, "p99": 2.98}
    assert summarize_ms([]) is None


def test_poisson_arrivals_have_the_requested_rate() -> None:
    offsets = arrival_offsets(20000, rate=50.0, burstiness=1.0, seed=1)
    gaps = [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential


def test_burstiness_changes_the_spread_not_the_rate() -> None:
    smooth = arrival_offsets(20000, rate=50.0, burstiness=4.0, seed=2)
    gaps = [b - a for a, b in zip([0.0, *smooth], smooth, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(0.5, abs=0.05)  # 1/sqrt(4)


def test_arrivals_stop_at_the_horizon_and_repeat_with_the_seed() -> None:
    offsets = arrival_offsets(None, rate=10.0, burstiness=1.0, seed=3, horizon_s=5.0)
    assert offsets[-1] <= 5.0 and 30 < len(offsets) < 75
    assert offsets == arrival_offsets(None, rate=10.0, burstiness=1.0, seed=3, horizon_s=5.0)


def test_list_and_slo_parsers() -> None:
    assert parse_concurrency_list("1, 8,32") == [1, 8, 32]
    assert parse_concurrency_list("none") == [None]
    assert parse_rate_list("2.5,inf") == [2.5, None]
    assert parse_slo("ttft=500,tpot=50ms") == {"ttft": 500.0, "tpot": 50.0}
    for bad, parser in (("0", parse_concurrency_list), ("x", parse_rate_list), ("-1", parse_rate_list),
                        ("ttft", parse_slo), ("itl=5", parse_slo), ("ttft=-2", parse_slo), ("", parse_slo)):
        with pytest.raises(ValueError):
            parser(bad)


@pytest.mark.parametrize("changes", [
    {"endpoint": "embeddings"}, {"url": "ftp://x"}, {"requests": 5, "duration_s": 3.0}, {"concurrency": [None]},
    {"burstiness": 0}, {"slo_ms": {"ttft": 0}}, {"unknown": 1}, {"output_len": 0}, {"seed": -1},
    {"prefix_share": -0.1}, {"prefix_share": 1.1}, {"prefix_share": 0.5, "dataset": "prompts.jsonl"},
])
def test_spec_validation(changes: dict) -> None:
    with pytest.raises(ValueError):
        LoadSpec.from_dict({"url": "http://127.0.0.1:1", **changes})


def test_prompts_have_the_requested_length_and_body() -> None:
    spec = LoadSpec(url="http://127.0.0.1:1", input_len=12, output_len=5, endpoint="chat", seed=3)
    pool = loadgen.PromptPool(spec, "m", point=1, size=3)
    bodies = [pool.request(i)[1] for i in range(5)]
    body = json.loads(bodies[0])
    assert len(body["messages"][0]["content"].split()) == 12
    assert body["max_tokens"] == 5 and body["stream"] is True and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True} and body["model"] == "m"
    assert len(set(bodies)) == 5  # past the pool of 3 texts, each request still has its own tag
    again = loadgen.PromptPool(spec, "m", point=1, size=3)
    assert [again.request(i)[1] for i in range(5)] == bodies  # same seed and point, same prompts
    other_point = loadgen.PromptPool(spec, "m", point=2, size=3)
    other_seed = loadgen.PromptPool(LoadSpec(url=spec.url, input_len=12, endpoint="chat", seed=4), "m", 1, 3)
    for pool_ in (other_point, other_seed):  # another point or run: other prompts from the first word on
        def start(body: bytes) -> list[str]:
            return json.loads(body)["messages"][0]["content"].split()[:2]

        assert all(start(pool_.request(i)[1]) != start(bodies[i]) for i in range(5))


def test_prefix_share_puts_one_prefix_before_each_unique_tag() -> None:
    spec = LoadSpec(url="http://127.0.0.1:1", input_len=20, seed=1, prefix_share=0.25)
    pool = loadgen.PromptPool(spec, "m", point=1, size=10)
    prompts = [json.loads(pool.request(i)[1])["prompt"].split() for i in range(30)]
    assert all(len(p) == 20 and p[:5] == prompts[0][:5] for p in prompts)
    assert len({tuple(p[5:9]) for p in prompts}) == 30
    whole = loadgen.PromptPool(LoadSpec(url=spec.url, input_len=8, seed=1, prefix_share=1.0), "m", 1, 4)
    assert len({whole.request(i)[1] for i in range(6)}) == 1  # all shared: every prompt the same


def test_dataset_prompts_get_the_tag_in_front(tmp_path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": "hi"}], "max_tokens": 3}) + "\n")
    spec = LoadSpec(url="http://127.0.0.1:1", endpoint="chat", dataset=str(data), seed=2)
    pool = loadgen.PromptPool(spec, "m", 1, 5, loadgen.read_dataset(str(data), 2))
    prompt, body = pool.request(7)
    messages = json.loads(body)["messages"]
    assert messages[0]["content"].split()[4:] == ["be", "brief"] and messages[1] == {"role": "user", "content": "hi"}
    assert (prompt.input_tokens, prompt.max_tokens) == (4 + 3, 3)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "has no prompts"), (b"[1]\n", "not a JSON object"), (b"{\"prompt\": 5}\n", "needs a non-empty"),
    (b'{"messages": ["hi"]}\n', "list of"), (b'{"prompt": "a", "max_tokens": "x"}\n', "max_tokens"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_a_bad_dataset_is_bad_input_naming_the_file(tmp_path, content: bytes, message: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(content)
    with pytest.raises(loadgen.BadInput, match=message):
        loadgen.read_dataset(str(data), 0)
    with pytest.raises(loadgen.BadInput, match="No such file"):
        loadgen.read_dataset(str(tmp_path / "missing.jsonl"), 0)
    with pytest.raises(loadgen.BadInput, match="Is a directory"):
        loadgen.read_dataset(str(tmp_path), 0)


def test_cost_per_million_tokens() -> None:
    # $2.50 an hour at 1000 output tokens/s: 3.6M tokens an hour, so $0.694 per million
    assert cost_per_million(2.5, 1000.0) == pytest.approx(0.694444, abs=1e-6)
    assert cost_per_million(3600.0, 1_000_000.0) == 1.0
    assert cost_per_million(None, 1000.0) is None
    assert cost_per_million(2.5, 0.0) is None


def _point(cpu_util: float, wall_s: float, send_lag_s: float, e2e_s: float, loop_lags: list[float] | None = None
           ) -> dict:
    spec = LoadSpec(url="http://127.0.0.1:1", seed=1)
    results = []
    for i in range(20):
        r = RequestResult(PROMPT, due=i)
        r.sent, r.e2e, r.output_tokens = i + send_lag_s, e2e_s, 6
        results.append(r)
    monitor = loadgen.Monitor("run", 20, False)
    monitor.lags = loop_lags or [0.0001] * 20
    return loadgen.summarize_point(results, 16, None, spec, wall_s, cpu_util, monitor)["client"]


def test_cpu_use_over_a_few_milliseconds_is_not_saturation() -> None:
    # a 6.6 ms run is all CPU for the client, and says nothing about whether its timestamps are late
    assert _point(cpu_util=0.98, wall_s=0.0066, send_lag_s=0.0, e2e_s=0.005)["saturated"] is False
    long = _point(cpu_util=0.98, wall_s=5.0, send_lag_s=0.0, e2e_s=0.005)
    assert long["saturated"] is True and long["reasons"] == ["client CPU 98% of a core"]


def test_send_lag_is_not_saturation_and_matters_relative_to_the_request_time() -> None:
    # 15 ms late against 300 ms requests (llama-server at c=16): the load was 5% lighter, nothing read high
    small = _point(cpu_util=0.05, wall_s=5.0, send_lag_s=0.015, e2e_s=0.300)
    assert (small["saturated"], small["sent_late"], small["reasons"]) == (False, False, [])
    large = _point(cpu_util=0.05, wall_s=5.0, send_lag_s=0.050, e2e_s=0.100)
    assert (large["saturated"], large["sent_late"]) == (False, True)


def test_a_late_event_loop_is_saturation() -> None:
    late = _point(cpu_util=0.5, wall_s=5.0, send_lag_s=0.0, e2e_s=0.1, loop_lags=[0.008] * 20)
    assert late["saturated"] is True and late["reasons"] == ["event-loop lag p90 8.0 ms"]


def test_a_failure_detail_is_one_line() -> None:
    result = RequestResult(PROMPT, due=0.0).fail("http 501", "<html>\n  <body>\n    <h1>Error</h1>\n")
    assert result.error_detail == "<html> <body> <h1>Error</h1>"
