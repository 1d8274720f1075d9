"""Cold starts: phases on the record, the summary, the history and the forecast drawn from it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuctl.deploy.coldstart import ColdStartRecord, history, predict, remember
from gpuctl.deploy.phases import PhaseLog, PullTally, cold_start, weights_source
from gpuctl.events import LayerProgress, NullReporter
from gpuctl.limits import budget_seconds, describe, plan_limits
from gpuctl.models.deployment import Deployment
from gpuctl.models.phases import Phase
from gpuctl.providers.capabilities import Capability

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
GB = 1e9


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(**changes: object) -> Deployment:
    fields: dict[str, object] = {"name": "d", "model": "m", "provider": "lambda", "idempotency_token": "t",
                                 "price_per_hour": 1.8, "created_at": T0}
    return Deployment.model_validate({**fields, **changes})


def test_a_phase_is_written_when_it_starts_and_when_it_ends() -> None:
    current = record()
    writes: list[list[Phase]] = []

    def update(**changes: object) -> None:
        nonlocal current
        current = current.model_copy(update=changes)
        writes.append(current.phases)

    log = PhaseLog(update, lambda: current)
    with log.phase("image", source="registry") as phase:
        assert [p.ended_at for p in current.phases] == [None]  # on the record while it runs
        phase.bytes = 123
    assert len(writes) == 2 and current.phases[0].bytes == 123 and current.phases[0].ended_at is not None
    with pytest.raises(RuntimeError), log.phase("weights"):
        raise RuntimeError("the download failed")
    assert [(p.name, p.ended_at is None) for p in current.phases] == [("image", False), ("weights", True)]


def test_the_cold_start_sums_up_and_bills_from_the_launch() -> None:
    deployment = record(launched_at=at(5), phases=[
        Phase(name="provision", started_at=at(0), ended_at=at(60)),
        Phase(name="host", started_at=at(60), ended_at=at(70)),
        Phase(name="image", started_at=at(70), ended_at=at(170), bytes=int(8 * GB), source="registry"),
        Phase(name="weights", started_at=at(170), ended_at=at(230), bytes=int(16 * GB), source="hub"),
        Phase(name="engine", started_at=at(230), ended_at=at(290)),
        Phase(name="first_token", started_at=at(290), ended_at=at(365)),
    ])
    summary = cold_start(deployment)
    assert summary is not None and summary.seconds == 365 and summary.billed_seconds == 360
    assert summary.cost_usd == pytest.approx(1.8 * 360 / 3600)
    assert cold_start(record()) is None


def test_a_pull_tally_counts_the_bytes_downloaded_not_the_cached_layers() -> None:
    tally = PullTally(NullReporter())
    with tally.layers("pulling") as update:
        update(LayerProgress(layer="a", phase="downloading", done_bytes=5, total_bytes=100))
        update(LayerProgress(layer="a", phase="done", done_bytes=100, total_bytes=100))
        update(LayerProgress(layer="b", phase="cached"))
    assert tally.downloaded_bytes == 100
    assert (weights_source(0, 0), weights_source(10, 10), weights_source(10, 0)) == ("cache", "mirror", "hub")


def past_up(provider: str = "lambda", gpu: str = "A100", provision: float = 100, pull_s: float = 50,
            image_bytes: float = 5 * GB, weights_s: float = 40, weights_bytes: float = 16 * GB,
            engine_s: float = 32) -> ColdStartRecord:
    return ColdStartRecord(provider=provider, gpu=gpu, engine="vllm", image="vllm/vllm-openai:v0.11.0",
                           weights_bytes=int(weights_bytes), phases=[
        Phase(name="provision", started_at=at(0), ended_at=at(provision)),
        Phase(name="host", started_at=at(provision), ended_at=at(provision + 10)),
        Phase(name="image", started_at=at(0), ended_at=at(pull_s), bytes=int(image_bytes), source="registry"),
        Phase(name="weights", started_at=at(0), ended_at=at(weights_s), bytes=int(weights_bytes), source="hub"),
        Phase(name="engine", started_at=at(0), ended_at=at(engine_s)),
        Phase(name="first_token", started_at=at(0), ended_at=at(0.5)),
    ])


def test_a_forecast_from_history_says_so_and_scales_by_size() -> None:
    past = [past_up(provision=90), past_up(provision=110), past_up(provider="runpod", provision=10)]
    forecast = predict(provider="lambda", kind=Capability.SSH_MACHINE, gpu="A100", engine="vllm",
                       image="vllm/vllm-openai:v0.11.0", weights_bytes=32 * GB, weights_basis="model files",
                       price_per_hour=1.8, past=past)
    by = {e.name: e for e in forecast.phases}
    assert [e.name for e in forecast.phases] == ["provision", "host", "image", "weights", "engine", "first_token"]
    assert by["provision"].seconds == 100 and by["provision"].basis == "history: median of 2 up(s) on lambda"
    assert by["image"].seconds == 50  # 5 GB seen before, at 100 MB/s seen before
    assert by["weights"].seconds == 80  # twice the bytes at the 400 MB/s seen
    assert by["engine"].seconds == 64 and by["engine"].basis.startswith("history: 2.0s per GB")
    assert forecast.history_ups == 2 and forecast.seconds == sum(e.seconds for e in forecast.phases)
    assert forecast.cost_usd == pytest.approx(1.8 * forecast.seconds / 3600, abs=1e-4)


def test_without_history_every_estimate_is_an_assumption() -> None:
    forecast = predict(provider="runpod", kind=Capability.ENGINE_CONTAINER, gpu="L40S", engine="vllm",
                       image="vllm/vllm-openai:v0.11.0", weights_bytes=16 * GB, weights_basis="from parameters",
                       price_per_hour=0.86, past=[])
    assert [e.name for e in forecast.phases] == ["provision", "weights", "engine", "first_token"]  # the pod pulls
    assert all(e.basis.startswith("assumed") or "assumed" in e.basis for e in forecast.phases)
    assert forecast.phases[0].seconds == 45 + 100  # placing the pod, then pulling 10 GB at 100 MB/s
    host = predict(provider="ssh", kind=Capability.USER_HOST, gpu="L40S", engine="vllm", image="i",
                   weights_bytes=GB, weights_basis="b", price_per_hour=0, past=[])
    assert [e.name for e in host.phases] == ["host", "image", "weights", "engine", "first_token"]
    assert host.cost_usd == 0


def test_history_is_remembered_on_this_machine() -> None:
    deployment = record(launched_at=at(0), phases=[Phase(name="provision", started_at=at(0), ended_at=at(30)),
                                                   Phase(name="host", started_at=at(30))])
    remember(deployment, weights_bytes=123)
    remember(record(), weights_bytes=None)  # nothing finished: nothing remembered
    (entry,) = history()
    assert entry.provider == "lambda" and entry.weights_bytes == 123 and [p.name for p in entry.phases] == ["provision"]


def test_limits_worst_case_and_who_enforces_them() -> None:
    assert budget_seconds(25, 2.5) == 36000 and budget_seconds(25, 0) is None and budget_seconds(None, 1) is None
    limits = plan_limits(price_per_hour=2.0, ttl_seconds=7200, idle_seconds=1800, budget_usd=3.0,
                         enforced_by="host", provider="lambda")
    assert (limits.worst_case_seconds, limits.worst_case_usd) == (5400, 3.0)  # the budget comes first
    assert describe(limits, 2.0) == "TTL 2h, idle 30m, budget $3.00; at most $3.00 (1h30m at $2.00/h)"
    open_ended = plan_limits(price_per_hour=2.0, ttl_seconds=None, idle_seconds=600, budget_usd=None,
                             enforced_by="gpuctl", provider="RunPod")
    assert open_ended.worst_case_usd is None and "RunPod runs the engine itself" in open_ended.notes[0]
    assert describe(open_ended, 2.0) == ("idle 10m, enforced while 'gpuctl top' runs; no bound: bills until "
                                         "'gpuctl down'")
    free = plan_limits(price_per_hour=0.0, ttl_seconds=None, idle_seconds=None, budget_usd=5, enforced_by="host",
                       provider="ssh")
    assert free.worst_case_usd is None and "never reached" in free.notes[0]
