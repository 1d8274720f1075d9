"""``gpuctl bench`` end to end: the CLI runs the load generator as a child process against the mock server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from gpuctl.models.deployment import Deployment
from gpuctl.state import StateStore
from tests.standins.mock_openai import MockProcess

Gpuctl = Callable[..., Result]
RUN_KEYS = {"concurrency", "rate", "requests_ok", "requests_failed", "failed_by_cause", "truncated_responses",
            "short_responses", "retried_requests", "input_tokens", "output_tokens", "output_tokens_requested",
            "input_tokens_source", "output_tokens_source", "cached_input_tokens", "seed", "salt", "prefix_share",
            "duration_s", "ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s", "total_tokens_per_s",
            "requests_per_s", "cost_per_1m_output_tokens", "cost_per_1m_total_tokens", "goodput_requests_per_s",
            "client_saturated", "client_sent_late"}
SMALL = ("-n", "4", "--input-len", "8", "--output-len", "8")


def add_deployment(project: Path, url: str, **fields: object) -> None:
    values = {"name": "llama", "model": "llama-3-8b", "provider": "runpod", "status": "running",
              "idempotency_token": "tok-1", "gpu": "L40S", "gpu_count": 1, "price_per_hour": 0.9, "endpoint": url,
              **fields}
    with StateStore(project).transaction() as state:
        state.deployments[str(values["name"])] = Deployment.model_validate(values)


def test_json_has_exactly_the_documented_keys(gpuctl: Gpuctl, mock: MockProcess) -> None:
    result = gpuctl("bench", "--url", mock.url, "-c", "1,2", *SMALL, "--slo", "ttft=1000,tpot=500", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == ["runs"]
    assert [set(run) for run in data["runs"]] == [RUN_KEYS, RUN_KEYS]
    first, second = data["runs"]
    assert (first["concurrency"], second["concurrency"], first["rate"]) == (1, 2, None)
    assert (first["requests_ok"], first["requests_failed"]) == (4, 0)
    assert set(first["ttft_ms"]) == {"mean", "p50", "p90", "p99"}
    assert first["cost_per_1m_output_tokens"] is None and first["cost_per_1m_total_tokens"] is None
    assert first["goodput_requests_per_s"] == pytest.approx(first["requests_per_s"], rel=1e-3)
    assert isinstance(first["client_saturated"], bool) and isinstance(first["client_sent_late"], bool)
    assert "no price known" in result.stderr
    assert (first["failed_by_cause"], first["truncated_responses"], first["short_responses"]) == ({}, 0, 0)
    assert (first["input_tokens"], first["output_tokens"], first["output_tokens_requested"]) == (4 * 8, 4 * 8, 4 * 8)
    assert (first["input_tokens_source"], first["output_tokens_source"]) == ("usage", "usage")
    # one seed and salt per run of the command, shared by its points
    assert isinstance(first["seed"], int) and len(first["salt"]) == 8
    assert (second["seed"], second["salt"]) == (first["seed"], first["salt"])


def test_cost_comes_from_the_price_and_the_measured_throughput(gpuctl: Gpuctl, mock: MockProcess) -> None:
    result = gpuctl("bench", "--url", mock.url, *SMALL, "--price-per-hour", "2.5", "--json")
    run = json.loads(result.stdout)["runs"][0]
    assert run["cost_per_1m_output_tokens"] == pytest.approx(2.5 / (3600 * run["output_tokens_per_s"]) * 1e6,
                                                             rel=1e-5)
    assert run["cost_per_1m_total_tokens"] == pytest.approx(2.5 / (3600 * run["total_tokens_per_s"]) * 1e6,
                                                            rel=1e-5)
    assert run["total_tokens_per_s"] == pytest.approx(2 * run["output_tokens_per_s"], rel=1e-3)  # 8 in, 8 out
    assert run["goodput_requests_per_s"] is None


def test_a_deployment_bench_uses_its_price_and_is_kept_for_history(gpuctl: Gpuctl, mock: MockProcess,
                                                                    isolated: Path) -> None:
    add_deployment(isolated, mock.url)
    result = gpuctl("bench", "llama", *SMALL, "-c", "2", "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert run["cost_per_1m_output_tokens"] == pytest.approx(0.9 / (3600 * run["output_tokens_per_s"]) * 1e6,
                                                             rel=1e-5)
    records = StateStore(isolated).read().bench_runs
    assert len(records) == 1
    assert (records[0].deployment, records[0].gpu, records[0].provider, records[0].model) == (
        "llama", "L40S", "runpod", "mock-model")
    assert records[0].run.model_dump(mode="json") == run

    history = gpuctl("bench", "--history", "--json")
    assert [h["deployment"] for h in json.loads(history.stdout)] == ["llama"]
    table = gpuctl("bench", "--history")
    header, _, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "GPU", "PROVIDER", "LOAD", "TOK/S", "TTFT", "MS", "$/HR", "$/1M", "OUT",
                              "$/1M", "ALL"]
    assert row.split()[:6] == ["llama", "L40S", "runpod", "c=2", "8/8", f"{run['output_tokens_per_s']:.0f}"]
    costs = [f"{run['cost_per_1m_output_tokens']:.3g}", f"{run['cost_per_1m_total_tokens']:.3g}"]
    assert row.split()[7:] == ["0.9", *costs]


def test_history_sorts_comparable_runs_cheapest_first(gpuctl: Gpuctl, mock: MockProcess, isolated: Path) -> None:
    add_deployment(isolated, mock.url, name="pricey", price_per_hour=9.0, gpu="H100-SXM")
    add_deployment(isolated, mock.url, name="cheap", price_per_hour=0.5, gpu="A10")
    for name in ("pricey", "cheap"):
        assert gpuctl("bench", name, *SMALL, "-q").exit_code == 0
    names = [h["deployment"] for h in json.loads(gpuctl("bench", "--history", "--json").stdout)]
    assert names == ["cheap", "pricey"]
    assert [h["deployment"] for h in json.loads(gpuctl("bench", "pricey", "--history", "--json").stdout)] == [
        "pricey"]


def test_history_without_records_says_so(gpuctl: Gpuctl) -> None:
    result = gpuctl("bench", "--history")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no stored benches yet" in result.stderr


def test_url_benches_are_not_stored(gpuctl: Gpuctl, mock: MockProcess, isolated: Path) -> None:
    assert gpuctl("bench", "--url", mock.url, *SMALL, "-q").exit_code == 0
    assert not (isolated / ".gpuctl" / "state.json").exists()


def test_the_summary_table_and_failures_by_cause(gpuctl: Gpuctl, mock: MockProcess) -> None:
    mock.configure(fail_every=3)
    result = gpuctl("bench", "--url", mock.url, "-n", "6", "--warmup", "0", "--output-len", "4",
                    "--price-per-hour", "1")
    assert result.exit_code == 8, result.stderr  # the figures are printed, and the failures are not hidden
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["c=1"]
    assert any(line.split() == ["requests", "ok", "/", "failed", "4", "/", "2"] for line in lines)
    assert any(line.startswith("$ per 1M output tokens") for line in lines)
    assert "2 failed: http 500 x2" in result.stderr
    assert "run 1/1: concurrency 1" in result.stderr  # live progress, relayed
    assert result.stderr.splitlines()[-1] == (
        f"error: requests to {mock.url} failed: run 1 (c=1): 2 of 6 failed (http 500 x2) (hint: the warnings "
        "above give the causes; --allow-failures 0.34 accepts this many)")


@pytest.mark.parametrize(("allowed", "code"), [("0.34", 0), ("0.3", 8), ("1", 0)])
def test_allow_failures_sets_the_fraction_that_still_exits_0(gpuctl: Gpuctl, mock: MockProcess, allowed: str,
                                                             code: int) -> None:
    mock.configure(fail_every=3)
    result = gpuctl("bench", "--url", mock.url, "-n", "6", "--warmup", "0", "--allow-failures", allowed, "--json")
    assert result.exit_code == code, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert (run["requests_failed"], run["failed_by_cause"]) == (2, {"http 500": 2})


def test_a_truncated_stream_fails_the_run(gpuctl: Gpuctl, mock: MockProcess) -> None:
    mock.configure(truncate_every=2)
    result = gpuctl("bench", "--url", mock.url, *SMALL, "--warmup", "0", "--json")
    assert result.exit_code == 8
    run = json.loads(result.stdout)["runs"][0]
    assert (run["requests_ok"], run["truncated_responses"], run["failed_by_cause"]) == (2, 2, {"truncated": 2})
    assert "truncated x2" in result.stderr and "no finish reason" in result.stderr


def test_short_answers_are_reported_not_failed(gpuctl: Gpuctl, mock: MockProcess) -> None:
    mock.configure(context_len=20, usage=False)
    result = gpuctl("bench", "--url", mock.url, "-n", "3", "--input-len", "8", "--output-len", "30", "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert (run["short_responses"], run["output_tokens"], run["output_tokens_requested"]) == (3, 36, 90)
    assert (run["output_tokens_source"], run["input_tokens_source"]) == ("counted", "counted")
    assert "3 of 3 answers were shorter than asked (12 of 30 output tokens on average)" in result.stderr


def test_a_server_closing_kept_alive_connections_loses_nothing_through_a_deployment(
        gpuctl: Gpuctl, mock: MockProcess, isolated: Path) -> None:
    add_deployment(isolated, mock.url)
    mock.configure(close_after_stream=True)
    result = gpuctl("bench", "llama", "-c", "1,4", *SMALL, "--endpoint", "chat", "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [(r["requests_ok"], r["requests_failed"]) for r in runs] == [(4, 0), (4, 0)]
    assert mock.stats()["dropped"] > 0 and sum(r["retried_requests"] for r in runs) > 0


def test_seed_and_salt_are_kept_and_a_seed_repeats_the_prompts(gpuctl: Gpuctl, mock: MockProcess,
                                                              isolated: Path) -> None:
    add_deployment(isolated, mock.url)
    mock.configure(prefix_cache=True, cache_block=4)
    first = json.loads(gpuctl("bench", "llama", *SMALL, "--json").stdout)["runs"][0]
    fresh = json.loads(gpuctl("bench", "llama", *SMALL, "--json").stdout)["runs"][0]
    assert first["seed"] != fresh["seed"] and first["salt"] != fresh["salt"]
    assert first["cached_input_tokens"] == fresh["cached_input_tokens"] == 0
    again = gpuctl("bench", "llama", *SMALL, "--seed", str(first["seed"]), "--json")
    repeat = json.loads(again.stdout)["runs"][0]
    assert (repeat["seed"], repeat["salt"]) == (first["seed"], first["salt"])
    assert repeat["cached_input_tokens"] == repeat["input_tokens"] == 4 * 8
    assert "answered 32 of 32 prompt tokens from its prefix cache" in again.stderr
    history = json.loads(gpuctl("bench", "--history", "--json").stdout)
    assert sorted((h["run"]["seed"], h["run"]["salt"]) for h in history) == sorted(
        (r["seed"], r["salt"]) for r in (first, fresh, repeat))


def test_prefix_share_reaches_the_server(gpuctl: Gpuctl, mock: MockProcess) -> None:
    mock.configure(prefix_cache=True, cache_block=4)
    result = gpuctl("bench", "--url", mock.url, "-n", "4", "--input-len", "16", "--prefix-share", "0.5",
                    "--json")
    run = json.loads(result.stdout)["runs"][0]
    assert (run["prefix_share"], run["cached_input_tokens"]) == (0.5, 4 * 8)


def test_an_api_key_from_the_environment_reaches_the_server_and_nothing_else(gpuctl: Gpuctl,
                                                                            mock: MockProcess) -> None:
    mock.configure(api_key="sk-standin-41b7")
    result = gpuctl("bench", "--url", mock.url, *SMALL, "--json", env={"OPENAI_API_KEY": "sk-standin-41b7"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runs"][0]["requests_ok"] == 4
    assert "sk-standin" not in result.stdout + result.stderr


def test_every_request_failing_is_a_health_error(gpuctl: Gpuctl, mock: MockProcess) -> None:
    result = gpuctl("bench", "--url", mock.url, "--model", "nope", "-n", "2", "--json")
    assert result.exit_code == 8
    assert json.loads(result.stdout)["runs"][0]["requests_failed"] == 2
    assert "http 404 x" in result.stderr and "does not exist" in result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: no request to {mock.url} succeeded (http 404 x2) (hint: the "
                                              "warnings above give the causes)")
    assert "failed: http 404 x2 (e.g. {" in result.stderr  # the example is one line of the answer


@pytest.mark.parametrize(("garbage", "model", "message"), [
    ("html", (), "answered text/html that is not JSON: '<!DOCTYPE html>"),
    ("json", (), "answered application/json that is not JSON"),
    ("html", ("--model", "mock-model"), "not OpenAI-style event streams"),
])
def test_a_server_answering_garbage_is_a_server_error(gpuctl: Gpuctl, mock: MockProcess, garbage: str,
                                                      model: tuple[str, ...], message: str) -> None:
    mock.configure(garbage=garbage)
    result = gpuctl("bench", "--url", mock.url, "-n", "2", *model)
    assert result.exit_code == 4, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and message in error[0] and "(hint: " in error[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("model", [(), ("--model", "mock-model")])
def test_a_refused_key_is_a_credentials_error(gpuctl: Gpuctl, mock: MockProcess, model: tuple[str, ...]) -> None:
    # without --model the key is first refused by /v1/models (as vLLM does), with it by every request
    mock.configure(api_key="right", models_need_key=True)
    result = gpuctl("bench", "--url", mock.url, "-n", "2", "--api-key", "wrong", *model)
    assert result.exit_code == 6, result.stderr
    assert "--api-key" in result.stderr and "wrong" not in result.stderr


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read dataset"), (b"not json\n", ":1: not a JSON object"),
    (b'{"prompt": ""}\n', ':1: needs a non-empty "prompt"'), (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
])
def test_a_bad_dataset_is_one_line_and_exit_2(gpuctl: Gpuctl, mock: MockProcess, isolated: Path,
                                              content: bytes | None, message: str) -> None:
    data = isolated / "prompts.jsonl"
    if content is not None:
        data.write_bytes(content)
    result = gpuctl("bench", "--url", mock.url, "--dataset", str(data), "-n", "1")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr and "(hint: " in result.stderr
    assert mock.stats()["requests"] == 0  # nothing was sent


def test_an_unreachable_server_is_a_health_error(gpuctl: Gpuctl, mock: MockProcess) -> None:
    mock_url = mock.url.rsplit(":", 1)[0] + ":1"
    result = gpuctl("bench", "--url", mock_url, "-n", "1")
    assert result.exit_code == 8
    assert "cannot reach" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (("llama", "--url", "http://127.0.0.1:9"), "not both"),
    (("--url", "http://127.0.0.1:9", "-n", "3", "--duration", "5s"), "not both"),
    (("--url", "http://127.0.0.1:9", "--slo", "ttft"), "KEY=MS"),
    (("--url", "http://127.0.0.1:9", "-c", "0"), "concurrency"),
    (("--url", "http://127.0.0.1:9", "--from", "host"), "--from host"),
    (("--url", "127.0.0.1:9"), "http://"),
    (("--url", "http://127.0.0.1:9", "--prefix-share", "2"), "--prefix-share"),
    (("--url", "http://127.0.0.1:9", "--prefix-share", "0.5", "--dataset", "x.jsonl"), "prefix_share"),
    (("--url", "http://127.0.0.1:9", "--allow-failures", "-1"), "--allow-failures"),
    (("--url", "http://127.0.0.1:9", "--seed", "-3"), "--seed"),
])
def test_usage_errors(gpuctl: Gpuctl, args: tuple[str, ...], message: str) -> None:
    result = gpuctl("bench", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_unknown_and_unready_deployments(gpuctl: Gpuctl, isolated: Path) -> None:
    add_deployment(isolated, "", status="provisioning", endpoint=None)
    missing = gpuctl("bench", "other")
    assert missing.exit_code == 3 and "no deployment named 'other' (known: llama)" in missing.stderr
    unready = gpuctl("bench", "llama")
    assert unready.exit_code == 2 and "has no endpoint yet (status: provisioning)" in unready.stderr
