"""Reading engines' Prometheus /metrics: the text format, histogram quantiles, each engine's names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpuctl.metrics.engines import Percentiles, activity_names, read
from gpuctl.metrics.prometheus import Exposition, Histogram, parse
from tests.fakehost import engine_metrics


def test_samples_labels_and_escapes() -> None:
    text = ('# HELP x help\n# TYPE x gauge\n'
            'x{model_name="a \\"b\\" c",engine="0"} 3.5\n'
            'y 1e3 1700000000000\n'
            'z{le="+Inf"} +Inf\n'
            'garbage line here\n')
    samples = parse(text)
    assert [(s.name, s.value) for s in samples] == [("x", 3.5), ("y", 1000.0), ("z", float("inf"))]
    assert samples[0].labels == {"model_name": 'a "b" c', "engine": "0"}


def test_totals_add_label_sets_and_fall_back_to_older_names() -> None:
    scrape = Exposition.of('old{engine="0"} 2\nold{engine="1"} 3\n')
    assert scrape.total(["new", "old"]) == 5.0
    assert scrape.total(["missing"]) is None


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    histogram = Histogram(buckets=[(0.1, 10.0), (0.2, 30.0), (0.4, 40.0), (float("inf"), 40.0)], count=40.0, sum=6.0)
    assert histogram.quantile(0.5) == pytest.approx(0.15)  # rank 20: half way through (0.1, 0.2]
    assert histogram.quantile(0.25) == pytest.approx(0.1)
    assert histogram.quantile(1.0) == pytest.approx(0.4)
    assert Histogram().quantile(0.5) is None
    overflow = Histogram(buckets=[(0.1, 0.0), (float("inf"), 5.0)], count=5.0)
    assert overflow.quantile(0.5) == 0.1  # in the +Inf bucket: the highest finite bound
    later = Histogram(buckets=[(0.1, 15.0), (0.2, 40.0), (0.4, 50.0), (float("inf"), 50.0)], count=50.0, sum=8.0)
    window = later.minus(histogram)
    assert (window.count, window.buckets[0]) == (10.0, (0.1, 5.0))


def _mock(records: list[dict], in_flight: int = 0) -> SimpleNamespace:
    return SimpleNamespace(records=records, in_flight=in_flight, settings=SimpleNamespace(model="org/m"))


RECORDS = [  # three answered requests (one not streamed), one failed
    {"status": 200, "recv": 0.0, "first": 0.05, "end": 0.45, "tokens": 5, "prompt_tokens": 7},
    {"status": 200, "recv": 1.0, "first": 1.07, "end": 1.87, "tokens": 9, "prompt_tokens": 3},
    {"status": 200, "recv": 2.0, "first": 2.3, "end": 2.3, "tokens": 4, "prompt_tokens": 2},
    {"status": 500, "recv": 3.0, "first": None, "end": 3.0, "tokens": 0, "prompt_tokens": 0},
]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "tgi"])
def test_each_engine_format_reads_back(engine: str) -> None:
    scrape = read(engine_metrics.render(engine, _mock(RECORDS, in_flight=2)))
    reading = scrape.reading
    assert reading.engine == engine  # found from the names alone
    assert (reading.running, reading.waiting, reading.requests_total) == (2.0, 0.0, 3.0)
    assert (reading.prompt_tokens_total, reading.generation_tokens_total) == (12.0, 18.0)
    assert reading.kv_cache_usage == (None if engine == "tgi" else 0.02)
    assert scrape.itl is not None and scrape.itl.count == 2  # the streamed ones: 0.1 s and 0.1 s per token
    assert scrape.itl.quantile(0.5) == pytest.approx(0.1, abs=0.05)
    if engine == "tgi":
        assert scrape.ttft is None  # TGI does not report it
    else:
        assert scrape.ttft is not None and scrape.ttft.count == 3
        p = Percentiles.of(scrape.ttft)
        assert p.count == 3 and p.p50_ms is not None and 40 <= p.p50_ms <= 100


def test_an_unknown_exposition_reads_as_nothing() -> None:
    reading = read("# nothing an engine says\nprocess_cpu_seconds_total 3\n").reading
    assert reading.engine is None and reading.running is None and reading.requests_total is None


def test_the_idle_watchdog_reads_requests_in_the_engine_and_a_counter() -> None:
    assert activity_names("vllm") == (["vllm:num_requests_running", "vllm:num_requests_waiting"],
                                      ["vllm:request_success_total"])
    assert activity_names("tgi") == (["tgi_batch_current_size", "tgi_queue_size"], ["tgi_request_count"])
    assert activity_names("sglang")[1] == ["sglang:num_requests_total"]
