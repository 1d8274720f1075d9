"""RunPod pods: launch, poll, terminate and find them, against the spec-checked REST v2 stand-in."""

from __future__ import annotations

import json
import logging
import shlex
import time

import httpx
import pytest

from gpuctl.errors import (
    ConfigError,
    CredentialsError,
    ExitCode,
    NoCapacityError,
    NotFoundError,
    ProviderError,
    UsageError,
)
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.client import Pod
from gpuctl.providers.runpod.mapping import pod_instance
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.providers.tagging import EXPIRES_AT, LAUNCH_TOKEN
from tests.providers.launch_fakes import ENGINE_KEY, HF_TOKEN, PUBLIC_KEY, SECRETS, TAGS, offer, request, vllm_engine
from tests.standins.openapi import OpenApiSpec
from tests.standins.server import Fault

PODS = "/v2/pods"
L40S = "NVIDIA L40S"


def secure_l40s(**changes):
    return request(offer("runpod", L40S, "US-TX-3", tier="secure"),
                   **({"engine": vllm_engine(), "secrets": dict(SECRETS)} | changes))


def creates(api):
    return api.calls("POST", PODS)


def wait_running(provider, pod_id, polls=5):
    for _ in range(polls):
        instance = provider.get(pod_id)
        if instance.status == "running":
            return instance
    raise AssertionError(f"pod {pod_id} never ran")


def test_launch_poll_terminate(runpod_api):
    provider = RunPodProvider()
    launched = provider.launch(secure_l40s())
    assert (launched.provider, launched.status, launched.provider_status) == ("runpod", "pending", "PROVISIONING")
    assert (launched.gpu, launched.gpu_count, launched.instance_type, launched.region) == ("L40S", 1, L40S, "US-TX-3")
    assert launched.endpoint_url == f"https://{launched.id}-8000.proxy.runpod.net"
    assert launched.price_per_hour == 0.86 and launched.name == "qwen-l40s"
    assert launched.ssh_host == "ssh.runpod.io" and launched.public_ip is None  # proxy only, until it runs

    running = wait_running(provider, launched.id)
    assert (running.ssh_host, running.ssh_port, running.ssh_user, running.public_ip) == ("127.0.0.1", 22, "root",
                                                                                        "127.0.0.1")
    assert running.tags[LAUNCH_TOKEN] == launched.tags[LAUNCH_TOKEN]

    provider.terminate(launched.id)
    assert runpod_api.state.terminated == [launched.id]
    with pytest.raises(NotFoundError) as gone:
        provider.get(launched.id)
    assert gone.value.exit_code == ExitCode.NOT_FOUND and launched.id in gone.value.message
    provider.terminate(launched.id)  # already gone: still fine
    assert [r.status for r in runpod_api.calls("DELETE", f"{PODS}/{launched.id}")] == [204, 404]
    assert provider.list_by_tag(TAGS) == []


def test_create_body_is_the_offer_and_the_engine(runpod_api):
    engine = vllm_engine()
    before = int(time.time())
    RunPodProvider().launch(secure_l40s(ttl_seconds=3600))
    [create] = creates(runpod_api)
    body = create.body
    assert body["name"] == "qwen-l40s" and body["image"] == "vllm/vllm-openai:v0.11.0"
    assert shlex.split(body["args"]) == engine.args  # to the image's entrypoint, `vllm serve`
    assert body["gpu"] == {"id": L40S, "count": 1, "minCudaVersion": "12.8"}  # the vLLM image's CUDA
    assert (body["cloud"], body["dataCenterIds"], body["disk"]) == ("SECURE", ["US-TX-3"], 80)
    assert body["ports"] == ["8000/http", "22/tcp"]
    assert "startSsh" not in body  # it would inject the account's keys; the pod gets its own in PUBLIC_KEY
    env = body["env"]
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["PUBLIC_KEY"] == PUBLIC_KEY
    assert (env["HF_TOKEN"], env["VLLM_API_KEY"]) == (HF_TOKEN, ENGINE_KEY)
    tags = json.loads(env["GPUCTL_TAGS"])
    assert {k: tags[k] for k in TAGS} == TAGS
    assert tags[LAUNCH_TOKEN] == "gpuctl-0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd"
    assert before + 3600 <= int(tags[EXPIRES_AT]) <= time.time() + 3600


@pytest.mark.parametrize(("tier", "region", "cloud"), [("community", "US-CA-2", "COMMUNITY"),
                                                       ("secure", "EU-RO-1", "SECURE"),
                                                       ("community", "any", "COMMUNITY")])
def test_pod_is_created_in_the_offers_tier_only(runpod_api, tier, region, cloud):
    launched = RunPodProvider().launch(request(offer("runpod", L40S, region, tier=tier, price=0.79),
                                               engine=vllm_engine(), secrets=dict(SECRETS)))
    [create] = creates(runpod_api)
    assert create.body["cloud"] == cloud
    assert create.body.get("dataCenterIds") == (None if region == "any" else [region])
    assert runpod_api.state.pods[launched.id].view(runpod_api.state)["cloud"] == cloud


def test_a_pod_lands_only_on_a_host_whose_driver_runs_the_images_cuda(runpod_api):
    # the stand-in's community RTX 4090 hosts in US-CA-2 run CUDA 12.4, older than the vLLM image's 12.8
    old_hosts = offer("runpod", "NVIDIA GeForce RTX 4090", "US-CA-2", tier="community")
    with pytest.raises(NoCapacityError):
        RunPodProvider().launch(request(old_hosts, engine=vllm_engine(), secrets=dict(SECRETS)))
    assert creates(runpod_api)[0].body["gpu"]["minCudaVersion"] == "12.8"
    # an image of unknown CUDA (the user's own, --image) sets no floor: the pod may land anywhere
    pod = RunPodProvider().launch(request(old_hosts, engine=vllm_engine(cuda_version=None), secrets=dict(SECRETS),
                                          token="gpuctl-own-image-token"))
    assert "minCudaVersion" not in creates(runpod_api)[1].body["gpu"]
    assert runpod_api.state.pods[pod.id].data_center == "US-CA-2"


def test_offer_without_tier_is_refused_before_any_call(runpod_api):
    with pytest.raises(UsageError, match="names no cloud tier"):
        RunPodProvider().launch(request(offer("runpod", L40S, "any"), engine=vllm_engine(), secrets=dict(SECRETS)))
    assert runpod_api.requests == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"engine": None}, "has no engine"),
    ({"engine": vllm_engine(api_key_env=None, secret_env=["HF_TOKEN"])}, "only with an API key"),
    ({"secrets": {"HF_TOKEN": HF_TOKEN}}, "no value for the engine's secret variable"),
    ({"engine": vllm_engine(engine="sglang", secret_flags={"--api-key": "SGLANG_API_KEY"})},
     "sglang takes its API key only as a command-line flag"),
])
def test_pods_without_an_engine_or_its_api_key_are_refused(runpod_api, changes, message):
    with pytest.raises(UsageError, match=message):
        RunPodProvider().launch(secure_l40s(**changes))
    assert creates(runpod_api) == []


def test_capacity_refusal_is_no_capacity(runpod_api):
    runpod_api.state.capacity_failures = 1
    with pytest.raises(NoCapacityError) as refused:
        RunPodProvider().launch(secure_l40s())
    assert refused.value.exit_code == ExitCode.NO_CAPACITY == 5
    assert "could not place 1x NVIDIA L40S in secure cloud in US-TX-3" in refused.value.message
    assert "no longer any instances available" in refused.value.message
    assert runpod_api.state.pods == {}
    assert RunPodProvider().launch(secure_l40s()).status == "pending"  # the next try is placed


def test_sold_out_datacenter_is_no_capacity(runpod_api):
    sold_out = request(offer("runpod", "NVIDIA H100 80GB HBM3", "US-TX-3", gpu="H100-SXM", tier="secure"),
                       engine=vllm_engine(), secrets=dict(SECRETS))
    with pytest.raises(NoCapacityError):
        RunPodProvider().launch(sold_out)


def test_server_error_on_create_is_not_retried(runpod_api, fast_retries):
    runpod_api.faults.next(Fault.error(500, method="POST", path=PODS))
    with pytest.raises(ProviderError) as failed:
        RunPodProvider().launch(secure_l40s())
    assert type(failed.value) is not NoCapacityError and failed.value.exit_code == ExitCode.PROVIDER
    assert "create 1x NVIDIA L40S" in failed.value.message
    assert len(creates(runpod_api)) == 1


def test_rate_limited_create_is_sent_again(runpod_api, fast_retries):
    runpod_api.faults.next(Fault.error(429, retry_after=0, method="POST", path=PODS))
    launched = RunPodProvider().launch(secure_l40s())
    assert [r.status for r in creates(runpod_api)] == [429, 201]  # a 429 created nothing
    assert list(runpod_api.state.pods) == [launched.id]


@pytest.mark.parametrize(("status", "error", "words"), [(402, ProviderError, "balance is too low"),
                                                        (401, CredentialsError, "rejected the API key"),
                                                        (403, CredentialsError, "refused access")])
def test_other_create_refusals(runpod_api, status, error, words):
    runpod_api.faults.next(Fault.error(status, method="POST", path=PODS))
    with pytest.raises(error, match=words):
        RunPodProvider().launch(secure_l40s())
    assert len(creates(runpod_api)) == 1


def test_secrets_stay_in_the_pod_environment(runpod_api, fast_retries, caplog):
    caplog.set_level(logging.DEBUG)
    provider = RunPodProvider()
    request_ = secure_l40s()
    launched = provider.launch(request_)
    running = wait_running(provider, launched.id)
    listed = provider.list_by_tag(TAGS)
    runpod_api.faults.next(Fault.error(500, method="POST", path=PODS, body={
        "title": "Internal Server Error", "status": 500, "detail": "boom"}))
    with pytest.raises(ProviderError) as failed:
        provider.launch(secure_l40s(token="gpuctl-second"))
    shown = [caplog.text, repr(request_), request_.model_dump_json(), str(failed.value), failed.value.one_line(),
             *(i.model_dump_json() for i in (launched, running, *listed)), *(repr(i) for i in (launched, running))]
    for secret in (HF_TOKEN, ENGINE_KEY):
        assert not any(secret in text for text in shown)
        sent = [r for r in runpod_api.requests if secret in json.dumps(r.body)]
        assert {(r.method, r.path) for r in sent} == {("POST", PODS)}
        assert all(secret not in json.dumps({k: v for k, v in r.body.items() if k != "env"}) for r in sent)


def test_list_by_tag_finds_only_gpuctls_pods(runpod_api):
    provider = RunPodProvider()
    mine = provider.launch(secure_l40s())
    other_project = provider.launch(secure_l40s(token="gpuctl-other", tags=TAGS | {"gpuctl-project": "p-other"}))
    raw = {"name": "hand-made", "image": "runpod/pytorch:2", "gpu": {"id": L40S}, "cloud": "SECURE"}
    with httpx.Client(base_url=runpod_api.url, headers={"Authorization": f"Bearer {runpod_api.api_key}"}) as http:
        assert http.post(PODS, json=raw).status_code == 201
        assert http.post(PODS, json=raw | {"env": {"GPUCTL_TAGS": "not json"}}).status_code == 201
    assert len(runpod_api.state.pods) == 4
    assert {i.id for i in provider.list_by_tag({"gpuctl": "managed"})} == {mine.id, other_project.id}
    assert [i.id for i in provider.list_by_tag({"gpuctl-project": "p-1a2b3c"})] == [mine.id]
    assert [i.id for i in provider.list_by_tag({})] != []  # every gpuctl pod, never the hand-made ones
    assert {i.id for i in provider.list_by_tag({})} == {mine.id, other_project.id}


def test_proxy_url_template_comes_from_the_environment(runpod_api, monkeypatch):
    monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", "http://10.200.3.2:{port}")
    launched = RunPodProvider().launch(secure_l40s())
    assert launched.endpoint_url == "http://10.200.3.2:8000"
    monkeypatch.setenv("GPUCTL_RUNPOD_PROXY_URL", "https://{podid}.example")
    with pytest.raises(ConfigError, match="GPUCTL_RUNPOD_PROXY_URL") as bad:
        RunPodProvider().get(launched.id)
    assert bad.value.exit_code == ExitCode.USAGE


def test_terminate_retries_a_transient_failure_and_reports_a_lasting_one(runpod_api, fast_retries):
    provider = RunPodProvider()
    launched = provider.launch(secure_l40s())
    runpod_api.faults.next(Fault.error(503, method="DELETE"))
    provider.terminate(launched.id)
    assert [r.status for r in runpod_api.calls("DELETE", f"{PODS}/{launched.id}")] == [503, 204]
    survivor = provider.launch(secure_l40s(token="gpuctl-survivor"))
    runpod_api.faults.always(Fault.error(500, method="DELETE"))
    with pytest.raises(ProviderError, match="DELETE /pods/"):
        provider.terminate(survivor.id)
    assert survivor.id in runpod_api.state.pods


@pytest.mark.parametrize(("status", "expected"), [("PROVISIONING", "pending"), ("STARTING", "pending"),
                                                  ("RUNNING", "running"), ("EXITED", "stopped"),
                                                  ("ERROR", "error"), ("TERMINATED", "terminated")])
def test_status_and_fields_of_the_specs_own_pod(status, expected):
    example = OpenApiSpec.load("runpod_rest_v2.json").example("GET", "/v2/pods/x")
    instance = pod_instance(Pod.model_validate(example | {"status": status}))
    assert (instance.status, instance.provider_status) == (expected, status)
    assert (instance.ssh_host, instance.ssh_port, instance.ssh_user) == ("195.26.233.3", 34446, "root")
    assert (instance.gpu, instance.region, instance.price_per_hour) == ("RTX-4090", "US-KS-2", 0.44)
    assert instance.tags == {}  # not gpuctl's
    assert instance.endpoint_url == (None if status == "TERMINATED" else "https://7h9k2m4n6p-8888.proxy.runpod.net")


def test_only_gpuctls_variable_of_a_pod_environment_is_kept():
    pod = Pod.model_validate({"id": "p", "name": "n", "status": "RUNNING",
                              "env": {"HF_TOKEN": HF_TOKEN, "GPUCTL_TAGS": json.dumps({"gpuctl": "managed"})}})
    assert pod.env == {"GPUCTL_TAGS": '{"gpuctl": "managed"}'} and pod.tags == {"gpuctl": "managed"}


def test_runpod_runs_the_engine_and_lambda_does_not():
    assert RunPodProvider.can(Capability.ENGINE_CONTAINER) and not LambdaProvider.can(Capability.ENGINE_CONTAINER)
    assert LambdaProvider.can(Capability.SSH_MACHINE) and not RunPodProvider.can(Capability.SSH_MACHINE)


def test_engine_logs_are_the_streams_backfill(runpod_api):
    provider = RunPodProvider()
    pod_id = provider.launch(secure_l40s()).id
    runpod_api.state.pods[pod_id].log = [f"line {n}" for n in range(1, 8)]
    assert provider.engine_logs(pod_id, tail=3) == "line 5\nline 6\nline 7\n"
    assert provider.engine_logs(pod_id) == "".join(f"line {n}\n" for n in range(1, 8))
    assert provider.engine_logs(pod_id, tail=0) == ""
    [first, everything] = runpod_api.calls("GET", f"{PODS}/{pod_id}/logs")
    assert (first.query, everything.query) == ({"source": ["container"], "tail": ["3"]},
                                               {"source": ["container"], "tail": ["5000"]})
    with pytest.raises(NotFoundError, match="RunPod has no pod gone"):
        provider.engine_logs("gone")


def test_engine_logs_stop_reading_a_stream_that_stays_open(monkeypatch):
    """The real stream stays open after its backfill: reading ends when it goes quiet."""
    import socket
    import threading

    from gpuctl.providers.runpod import client as api_module

    monkeypatch.setattr(api_module, "LOG_IDLE_S", 0.2)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        event = b'data: {"ts":"t","source":"container","line":"Model loaded."}\n\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        stop.wait(5)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("GPUCTL_RUNPOD_API_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_test")
    started = time.monotonic()
    assert RunPodProvider().engine_logs("p1", tail=10) == "Model loaded.\n"
    assert time.monotonic() - started < 2
    stop.set()
    thread.join(5)
    listener.close()
