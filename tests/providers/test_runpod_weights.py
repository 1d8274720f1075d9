"""RunPod weights caches against the spec-checked REST v2 stand-in: network volumes per data center, engine pods that
mount them, and the CPU pod that fills one (its log is scripted here; test_runpod_weights_up.py runs it for real)."""

from __future__ import annotations

import json
import shlex
from contextlib import contextmanager
from typing import Any

import pytest

from gpuctl.deploy import tags
from gpuctl.errors import CredentialsError, ExitCode, NoCapacityError, ProviderError, TimeoutError_, UsageError
from gpuctl.events import NullReporter
from gpuctl.models.weights_cache import WeightsCache
from gpuctl.providers.runpod import seeding as runpod_seed
from gpuctl.providers.runpod.client import RunPodApi
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.providers.tagging import EXPIRES_AT, LAUNCH_TOKEN
from gpuctl.weights.fetcher import EVENT_PREFIX
from gpuctl.weights.models import Manifest, SeedRequest, WeightFile
from tests.providers.launch_fakes import HF_TOKEN, SECRETS, TAGS, offer, request, vllm_engine
from tests.standins.server import Fault

VOLUMES = "/v2/network-volumes"
L40S = "NVIDIA L40S"
MANIFEST = Manifest(repo="org/tiny", revision="main", commit="c" * 40, format="safetensors", gated=False,
                    files=[WeightFile(name="model.safetensors", size=3000, algo="sha256", digest="d" * 64),
                           WeightFile(name="config.json", size=100, algo="git-blob-sha1", digest="e" * 40)])
SEED_TOKEN = "gpuctl-seed-0123456789abcdef"


def seed_request(**changes: Any) -> SeedRequest:
    values: dict[str, Any] = {"name": "qwen-l40s", "manifest": MANIFEST, "endpoint": "https://hub.example",
                              "tags": dict(TAGS), "idempotency_token": SEED_TOKEN, "hf_token": HF_TOKEN}
    return SeedRequest(**(values | changes))


def events(*items: dict[str, Any]) -> list[str]:
    return [EVENT_PREFIX + json.dumps(item) for item in items]


DONE = {"e": "done", "total": 3100, "downloaded": 3000, "reused": 100, "refetched": [], "resumed": ["config.json"]}


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def info(self, message: str) -> None:
        self.calls.append(("info", message))

    def warn(self, message: str) -> None:
        self.calls.append(("warn", message))

    @contextmanager
    def transfer(self, message: str, total: int):
        self.calls.append(("transfer", (message, total)))
        yield lambda done: self.calls.append(("done", done))


@pytest.fixture
def provider(runpod_api) -> RunPodProvider:
    return RunPodProvider()


@pytest.fixture
def fast(monkeypatch) -> None:
    monkeypatch.setattr(runpod_seed, "POLL_S", 0.01)


# -- volumes ----------------------------------------------------------------------------------------------


def test_one_volume_per_data_center_created_once_then_reused(provider, runpod_api) -> None:
    first = provider.ensure_weights_cache("US-TX-3", min_gb=4, tags={})
    assert (first.name, first.region, first.kind, first.size_gb) == ("gpuctl-hf-cache-US-TX-3", "US-TX-3",
                                                                     "network-volume", 10)  # RunPod's least
    again = provider.ensure_weights_cache("US-TX-3", min_gb=8, tags={})
    other = provider.ensure_weights_cache("US-KS-2", min_gb=30, tags={})
    assert again.id == first.id and other.id != first.id and other.size_gb == 30
    assert [c.body for c in runpod_api.calls("POST", VOLUMES)] == [
        {"name": "gpuctl-hf-cache-US-TX-3", "dataCenter": "US-TX-3", "size": 10},
        {"name": "gpuctl-hf-cache-US-KS-2", "dataCenter": "US-KS-2", "size": 30}]
    assert runpod_api.calls("PATCH", f"{VOLUMES}/{first.id}") == []


def test_a_volume_grows_for_a_bigger_model_and_never_shrinks(provider, runpod_api) -> None:
    small = provider.ensure_weights_cache("US-TX-3", min_gb=20, tags={})
    grown = provider.ensure_weights_cache("US-TX-3", min_gb=170, tags={})
    kept = provider.ensure_weights_cache("US-TX-3", min_gb=12, tags={})
    assert (grown.id, grown.size_gb, kept.size_gb) == (small.id, 170, 170)
    assert [c.body for c in runpod_api.calls("PATCH", f"{VOLUMES}/{small.id}")] == [{"size": 170}]
    assert runpod_api.state.volumes[small.id]["size"] == 170


def test_a_volume_over_runpods_4096_gb_is_refused_before_any_call(provider, runpod_api) -> None:
    # CreateNetworkVolumeRequest and UpdateNetworkVolumeRequest: "size": {"minimum": 10, "maximum": 4096};
    # the API refuses more with 422
    small = provider.ensure_weights_cache("US-TX-3", min_gb=100, tags={})
    sent = len(runpod_api.requests)
    for region in ("US-TX-3", "US-KS-2"):  # growing one, creating one
        with pytest.raises(ProviderError) as refused:
            provider.ensure_weights_cache(region, min_gb=5000, tags={})
        assert refused.value.message == (f"RunPod network volumes hold at most 4096 GB, and gpuctl-hf-cache-{region} "
                                         "would need 5000 GB")
        assert "downloads the weights itself" in (refused.value.hint or "")
    assert len(runpod_api.requests) == sent  # nothing asked
    assert provider.ensure_weights_cache("US-TX-3", min_gb=4096, tags={}).size_gb == 4096  # the largest is fine
    assert [c.body for c in runpod_api.calls("PATCH", f"{VOLUMES}/{small.id}")] == [{"size": 4096}]


def test_only_secure_offers_in_a_known_data_center_use_a_cache(provider, runpod_api) -> None:
    assert provider.weights_cache_region(offer("runpod", L40S, "US-TX-3", tier="secure")) == "US-TX-3"
    # Community Cloud pods cannot mount network volumes; "any" names no data center to put one in
    assert provider.weights_cache_region(offer("runpod", L40S, "US-CA-2", tier="community")) is None
    assert provider.weights_cache_region(offer("runpod", L40S, "any", tier="secure")) is None
    with pytest.raises(UsageError):
        provider.ensure_weights_cache("any", min_gb=10, tags={})
    assert runpod_api.calls("POST", VOLUMES) == []


def test_caches_are_gpuctl_volumes_only_and_show_use(provider, runpod_api) -> None:
    api = RunPodApi.from_env()
    api.create_network_volume("my-datasets", "US-TX-3", 50)
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    assert [(c.id, c.in_use) for c in provider.weights_caches()] == [(cache.id, False)]
    provider.launch(secure_l40s(cache))
    [listed] = provider.weights_caches()
    assert (listed.name, listed.region, listed.size_gb, listed.in_use) == (cache.name, "US-TX-3", 10, True)


def test_deleting_a_cache_twice_is_fine(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    provider.delete_weights_cache(cache)
    provider.delete_weights_cache(cache)  # already gone: not an error
    assert runpod_api.state.volumes == {} and provider.weights_caches() == []
    assert [c.status for c in runpod_api.calls("DELETE", f"{VOLUMES}/{cache.id}")] == [204, 404]


# -- the engine pod ---------------------------------------------------------------------------------------


def secure_l40s(cache: WeightsCache | None, region: str = "US-TX-3", tier: str = "secure"):
    engine = vllm_engine(env={"HF_HUB_OFFLINE": "1"}, cache_mount="/root/.cache/huggingface:ro")
    return request(offer("runpod", L40S, region, tier=tier), engine=engine, secrets=dict(SECRETS),
                   weights_cache=cache)


def test_the_engine_pod_mounts_the_volume_in_its_data_center(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    instance = provider.launch(secure_l40s(cache))
    [create] = runpod_api.calls("POST", "/v2/pods")
    assert create.body["mounts"] == {"network": [{"volumeId": cache.id, "path": "/root/.cache/huggingface"}]}
    assert create.body["dataCenterIds"] == ["US-TX-3"] and create.body["env"]["HF_HUB_OFFLINE"] == "1"
    assert instance.region == "US-TX-3"
    provider.launch(secure_l40s(cache, "any"))  # no data center in the offer: the volume's
    assert runpod_api.calls("POST", "/v2/pods")[-1].body["dataCenterIds"] == ["US-TX-3"]


def test_community_offers_and_other_data_centers_cannot_use_the_volume(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("US-CA-2", min_gb=10, tags={})
    with pytest.raises(UsageError, match="Secure Cloud"):  # the lifecycle asks weights_cache_region first
        provider.launch(secure_l40s(cache, "US-CA-2", tier="community"))
    with pytest.raises(UsageError, match="US-CA-2"):
        provider.launch(secure_l40s(cache, "US-TX-3"))
    assert runpod_api.calls("POST", "/v2/pods") == []


# -- the seeding pod --------------------------------------------------------------------------------------


def test_the_seeding_pod_gets_secrets_and_job_in_env_and_carries_the_tags(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    body = runpod_seed.seed_pod_request(cache, seed_request(), {"id": "cpu3c-2-4", "vcpuCount": 4}, expires_at=99)
    assert HF_TOKEN not in body["args"] and body["env"]["HF_TOKEN"] == HF_TOKEN
    args = shlex.split(body["args"])
    assert args[:3] == ["python3", "-u", "-c"] and args[4:7] == ["fetch", "--cache", runpod_seed.SEED_MOUNT]
    assert json.loads(body["env"][runpod_seed.JOB_ENV]) == {
        "endpoint": "https://hub.example", "manifest": MANIFEST.model_dump(mode="json"), "workers": 8}
    assert json.loads(body["env"]["GPUCTL_TAGS"]) == {**TAGS, LAUNCH_TOKEN: SEED_TOKEN, EXPIRES_AT: "99"}
    assert (body["cpu"], body["dataCenterIds"], body["image"]) == ({"id": "cpu3c-2-4", "vcpuCount": 4},
                                                                   ["US-TX-3"], runpod_seed.SEED_IMAGE)
    assert "gpu" not in body and body["mounts"] == {"network": [{"volumeId": cache.id,
                                                                 "path": runpod_seed.SEED_MOUNT}]}
    # what 'gpuctl down' (no pod recorded yet) and 'gpuctl gc' look for finds a seeding pod left behind
    pod = RunPodApi.from_env().create_pod(body)
    found = {i.id for i in provider.list_by_tag(tags.deployment_tags("p-1a2b3c", "qwen-l40s"))}
    assert found == {pod.id} and {i.id for i in provider.list_by_tag(tags.managed())} == {pod.id}


def test_the_cheapest_cpu_free_in_the_data_center_is_picked(runpod_api) -> None:
    cpus = RunPodApi.from_env().list_cpu_types(vcpu_count=4)
    assert runpod_seed.cheapest_cpu(cpus, "US-TX-3") == {"id": "cpu3c-2-4", "vcpuCount": 4}
    assert runpod_seed.cheapest_cpu(cpus, "US-CA-2") == {"id": "cpu5c-2-4", "vcpuCount": 4}
    assert runpod_seed.cheapest_cpu(cpus, "EU-NOWHERE") is None
    assert runpod_seed.cheapest_cpu(cpus, "US-TX-3", vcpus=64) is None


def test_seeding_reports_progress_and_deletes_its_pod(provider, runpod_api, fast) -> None:
    runpod_api.state.cpu_log = ["Python 3.12", *events({"e": "plan", "need": 3000, "files": 2},
                                                        {"e": "progress", "done": 3000}, DONE)]
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    reporter = Recorder()
    report = provider.seed_weights(cache, seed_request(), reporter)
    assert (report.repo, report.commit, report.files) == ("org/tiny", "c" * 40, 2)
    assert (report.total_bytes, report.downloaded_bytes, report.reused_bytes, report.resumed) == (
        3100, 3000, 100, ["config.json"])
    assert ("transfer", ("downloading org/tiny", 3000)) in reporter.calls and ("done", 3000) in reporter.calls
    [create] = runpod_api.calls("POST", "/v2/pods")
    assert runpod_api.state.pods == {} and runpod_api.state.terminated == [create.response_body["id"]]


def test_a_gated_repo_fails_as_over_ssh_and_leaves_no_pod(provider, runpod_api, fast) -> None:
    runpod_api.state.cpu_log = events({"e": "error", "kind": "gated", "message": "401 from the hub"})
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    with pytest.raises(CredentialsError) as caught:
        provider.seed_weights(cache, seed_request(hf_token=None), NullReporter())
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert runpod_api.state.pods == {} and len(runpod_api.state.terminated) == 1


def test_a_silent_pod_times_out_and_is_deleted(provider, runpod_api, fast, monkeypatch) -> None:
    monkeypatch.setattr(runpod_seed, "START_BUDGET_S", 0.3)
    runpod_api.state.cpu_log = ["pulling image"]
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    with pytest.raises(TimeoutError_, match="did not finish"):
        provider.seed_weights(cache, seed_request(), NullReporter())
    assert runpod_api.state.pods == {} and len(runpod_api.state.terminated) == 1


def test_ctrl_c_deletes_the_seeding_pod(provider, runpod_api, fast, monkeypatch) -> None:
    runpod_api.state.cpu_log = ["pulling image"]
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runpod_seed.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        provider.seed_weights(cache, seed_request(), NullReporter())
    assert runpod_api.state.pods == {} and len(runpod_api.state.terminated) == 1


def test_a_retry_follows_the_pod_it_left_instead_of_starting_another(provider, runpod_api, fast) -> None:
    runpod_api.state.cpu_log = events(DONE)
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    api = RunPodApi.from_env()
    left = api.create_pod(runpod_seed.seed_pod_request(cache, seed_request(), {"id": "cpu3c-2-4", "vcpuCount": 4},
                                                       expires_at=99))
    report = provider.seed_weights(cache, seed_request(), NullReporter())
    assert report.downloaded_bytes == 3000
    assert len(runpod_api.calls("POST", "/v2/pods")) == 1 and runpod_api.state.terminated == [left.id]


def test_no_cpu_in_the_data_center_is_no_capacity_and_starts_nothing(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("EU-RO-1", min_gb=10, tags={})
    runpod_api.state.cpus["cpu3c-2-4"].stock["EU-RO-1"] = "NONE"
    with pytest.raises(NoCapacityError, match="EU-RO-1"):
        provider.seed_weights(cache, seed_request(), NullReporter())
    assert runpod_api.calls("POST", "/v2/pods") == []


def test_a_create_that_fails_on_the_way_back_leaves_no_pod(provider, runpod_api) -> None:
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    runpod_api.faults.next(Fault.error(400, path="/v2/pods", method="POST"))
    with pytest.raises(NoCapacityError, match="could not place a CPU pod"):
        provider.seed_weights(cache, seed_request(), NullReporter())
    assert runpod_api.state.pods == {}


# -- RunPod's rate limit during an hours-long seeding -----------------------------------------------------------
# The spec's 429 (components.responses.TooManyRequestsError): problem+json "rate limit exceeded for the minute
# window" with Retry-After in seconds; RateLimit / RateLimit-Policy accompany successful answers too.
RATE_LIMITED = Fault("status", status=429, method="GET", path="/v2/pods/", headers={
    "Retry-After": "30", "RateLimit": '"minute";r=0;t=30, "hour";r=2800;t=1812',
    "RateLimit-Policy": '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'},
    body={"title": "Too Many Requests", "status": 429, "detail": "rate limit exceeded for the minute window"})


@pytest.fixture
def slept(monkeypatch, runpod_api) -> list[float]:
    """The waits of the seeding loop, recorded instead of slept; the first one lets the fetcher finish."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        for pod in runpod_api.state.pods.values():
            if not waits[1:]:
                pod.log = [*pod.log, *events(DONE)]

    monkeypatch.setattr(runpod_seed.time, "sleep", sleep)
    return waits


def test_a_long_retry_after_is_waited_out_not_fatal(provider, runpod_api, slept) -> None:
    runpod_api.state.cpu_log = ["pulling image"]
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    runpod_api.faults.next(RATE_LIMITED)  # longer than the 5 s one request may wait for a retry
    report = provider.seed_weights(cache, seed_request(), NullReporter())
    assert report.files == 2
    assert 30.0 in slept
    assert [r.status for r in runpod_api.requests if r.method == "GET" and r.path.startswith("/v2/pods/")
            ].count(429) == 1
    assert runpod_api.state.pods == {}


def test_a_retry_after_past_the_deadline_fails_at_once(provider, runpod_api, slept, monkeypatch) -> None:
    monkeypatch.setattr(runpod_seed, "START_BUDGET_S", 10.0)
    runpod_api.state.cpu_log = ["pulling image"]
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    runpod_api.faults.next(RATE_LIMITED)
    with pytest.raises(TimeoutError_, match=r"RunPod asks to wait 30 s more \(rate limited \(429: Too Many Requests"):
        provider.seed_weights(cache, seed_request(), NullReporter())
    assert slept == [] and runpod_api.state.pods == {}


def test_the_polls_slow_down_as_the_quota_runs_low(provider, runpod_api, slept) -> None:
    runpod_api.state.cpu_log = ["pulling image"]
    runpod_api.state.rate_limit = '"minute";r=1;t=20, "hour";r=2800;t=1812'  # one request left this minute
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    provider.seed_weights(cache, seed_request(), NullReporter())
    assert len(slept) == 1 and 19 <= slept[0] <= 20  # until the minute window resets, not the usual 2 s


def test_plenty_of_quota_keeps_the_usual_pace(provider, runpod_api, slept) -> None:
    runpod_api.state.cpu_log = ["pulling image"]
    runpod_api.state.rate_limit = '"minute";r=58;t=50, "hour";r=2800;t=1812, "day";r=49500;t=45012'
    cache = provider.ensure_weights_cache("US-TX-3", min_gb=10, tags={})
    provider.seed_weights(cache, seed_request(), NullReporter())
    assert slept == [runpod_seed.POLL_S]
