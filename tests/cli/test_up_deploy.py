"""``gpuctl up`` without --dry-run, against a container-style provider (its own engine at endpoint_url).

The provider is the in-test FakePod; its endpoint is mock_openai on loopback, so no GPU host is needed.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, make_offer, write_recipe
from tests.standins.mock_openai import MockProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine() -> Iterator[MockProcess]:
    with MockProcess("--model", "tiny-served") as server:
        yield server


@pytest.fixture
def pods(fake_cloud: Cloud, engine: MockProcess, isolated: Path) -> Cloud:
    write_recipe(isolated)
    fake_cloud.set(endpoint_url=engine.url)
    return fake_cloud


def deployments(project: Path) -> dict:
    return StateStore(project).read().deployments


def test_nothing_is_launched_without_a_confirmation(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    result = gpuctl("up", "tiny", "--ttl", "2h", "--name", "t1")
    assert result.exit_code == 2
    assert ("deploy t1: tiny on fakepod 1 x L40S in fake-east-1 ($0.50/h), TTL 2h, enforced while 'gpuctl top' runs; "
            "at most $1.00 (2h at $0.50/h)") in result.stderr
    assert "pass -y" in result.stderr
    assert pods.world["launches"] == [] and deployments(isolated) == {}


def test_up_deploys_and_prints_the_endpoint(gpuctl, pods: Cloud, engine: MockProcess, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    result = gpuctl("up", "tiny", "--name", "t1", "-y")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"t1 is ready: {engine.url}/v1"
    assert '-H "Authorization: Bearer $OPENAI_API_KEY"' in result.stdout  # a pod's endpoint is always public
    record = deployments(isolated)["t1"]
    assert (record.status, record.provider, record.instance_id, record.endpoint) == (
        "running", "fakepod", "fakepod-1", engine.url)
    assert record.public and record.host is None and record.owner_pid is None
    assert record.tags == {"gpuctl": "managed", "gpuctl-project": record.project_id, "gpuctl-deployment": "t1"}
    launch = pods.world["launches"][0]
    assert launch["engine"] is True and launch["secrets"] == ["VLLM_API_KEY"]
    assert launch["token"] == record.idempotency_token and launch["tags"] == record.tags
    key_file = isolated / ".gpuctl" / "secrets" / "t1.env"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip().split("=", 1)[1]
    assert key not in (isolated / ".gpuctl" / "state.json").read_text()
    assert key not in result.stdout + result.stderr


def test_json_and_quiet_output(gpuctl, pods: Cloud, engine: MockProcess) -> None:
    pods.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    doc = json.loads(gpuctl("up", "tiny", "--name", "j1", "-y", "--json").stdout)
    assert (doc["name"], doc["status"], doc["endpoint"], doc["price_per_hour"]) == ("j1", "running", engine.url, 0.5)
    quiet = gpuctl("up", "tiny", "--name", "q1", "-y", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == f"{engine.url}/v1\n"


def test_a_capacity_error_falls_back_to_the_next_offer(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.cheap", 0.4), fault="capacity")
    pods.add_offer(make_offer("fakepod", "pod.next", 0.6))
    result = gpuctl("up", "tiny", "--name", "f1", "-y")
    assert result.exit_code == 0, result.stderr
    assert "if it has no capacity, then: fakepod 1 x L40S in fake-east-1 ($0.60/h)" in result.stderr
    assert "($0.40/h) has no capacity (pod.cheap is sold out); trying the next offer" in result.stderr
    record = deployments(isolated)["f1"]
    assert record.offer_id == "fakepod:pod.next:fake-east-1" and record.price_per_hour == 0.6
    assert [(a.offer_id, a.error) for a in record.attempts] == [
        ("fakepod:pod.cheap:fake-east-1", "pod.cheap is sold out"), ("fakepod:pod.next:fake-east-1", None)]
    tokens = [launch["token"] for launch in pods.world["launches"]]
    assert len(set(tokens)) == 2, "each attempt has its own idempotency token"


def test_no_capacity_anywhere_exits_5_and_leaves_nothing(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4), fault="capacity")
    pods.add_offer(make_offer("fakepod", "pod.b", 0.6), fault="capacity")
    result = gpuctl("up", "tiny", "--name", "n1", "-y")
    assert result.exit_code == 5
    assert "no capacity at any of the 2 offer(s) tried" in result.stderr
    record = deployments(isolated)["n1"]
    assert record.status == "terminated" and "no capacity" in (record.error or "")
    assert pods.live() == []


def test_a_launch_500_tears_down_by_tags_and_exits_4(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4), fault="error")
    result = gpuctl("up", "tiny", "--name", "e1", "-y")
    assert result.exit_code == 4
    assert "HTTP 500 from the fake cloud" in result.stderr
    assert deployments(isolated)["e1"].status == "terminated"
    assert pods.live() == []


def test_an_unhealthy_engine_exits_8_with_its_log_and_is_terminated(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    pods.set(endpoint_url="http://127.0.0.1:9")  # nothing answers there
    result = gpuctl("up", "tiny", "--name", "h1", "-y", "--health-timeout", "2s")
    assert result.exit_code == 8, result.stderr
    assert "was not healthy after 2s" in result.stderr
    assert "last lines of the engine log:\n  engine log of fakepod-1" in result.stderr
    assert pods.world["terminations"] == ["fakepod-1"] and pods.live() == []
    assert deployments(isolated)["h1"].status == "terminated"


def test_keep_on_failure_keeps_it_for_down(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    pods.set(endpoint_url="http://127.0.0.1:9")
    result = gpuctl("up", "tiny", "--name", "k1", "-y", "--health-timeout", "1s", "--keep-on-failure")
    assert result.exit_code == 8
    assert "kept what was created for 'k1'" in result.stderr
    assert deployments(isolated)["k1"].status == "failed" and len(pods.live()) == 1
    down = gpuctl("down", "k1")
    assert down.exit_code == 0, down.stderr
    assert down.stdout.startswith("k1: down after ") and pods.live() == []


def test_a_name_in_use_is_refused(gpuctl, pods: Cloud) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    assert gpuctl("up", "tiny", "--name", "same", "-y").exit_code == 0
    again = gpuctl("up", "tiny", "--name", "same", "-y")
    assert again.exit_code == 2
    assert "a deployment named 'same' already exists (status running)" in again.stderr
    assert len(pods.world["launches"]) == 1


def test_the_default_name_is_model_gpu_and_hex(gpuctl, pods: Cloud, isolated: Path) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    assert gpuctl("up", "tiny", "-y").exit_code == 0
    (name,) = deployments(isolated)
    assert name.startswith("tiny-l40s-") and len(name) == len("tiny-l40s-") + 4


@pytest.mark.parametrize(("args", "message"), [
    (("--host", "local", "--gpu", "l40s"), "--gpu cannot be combined with --host"),
    (("--identity", "k"), "--identity only apply with --host"),
    (("--name", "Bad Name"), "'Bad Name' is not a valid deployment name"),
])
def test_flag_refusals(gpuctl, pods: Cloud, args: tuple[str, ...], message: str) -> None:
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    result = gpuctl("up", "tiny", "-y", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert pods.world["launches"] == []


def test_the_ready_hook_gets_the_running_deployment(pods: Cloud, engine: MockProcess, isolated: Path) -> None:
    """Where the health bench (issue 7) plugs in: after the record says running, never tearing it down."""
    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.lifecycle import UpRequest, up
    from gpuctl.deploy.planning import candidate_plans
    from gpuctl.plan import PlanRequest, plan_inputs
    from gpuctl.plugins import ProviderRegistry

    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    ctx = DeployContext(store=StateStore(isolated), registry=ProviderRegistry.discover())
    request = PlanRequest(model="tiny", ttl_seconds=3600)
    plans = candidate_plans(ctx, request, plan_inputs(request, project_root=isolated, registry=ctx.registry))
    seen = []

    def hook(deployment) -> None:
        seen.append((deployment.name, deployment.status, deployment.endpoint))
        raise RuntimeError("the bench broke")

    with pytest.raises(RuntimeError, match="the bench broke"):
        up(ctx, UpRequest(name="hooked", plans=plans, on_ready=hook))
    assert seen == [("hooked", "running", engine.url)]
    record = deployments(isolated)["hooked"]
    assert record.status == "running" and len(pods.live()) == 1
    assert record.expires_at is not None and record.launched_at is not None
    assert (record.expires_at - record.launched_at).total_seconds() == 3600


def test_a_weights_cache_the_provider_refuses_only_warns(gpuctl, pods: Cloud, isolated: Path, monkeypatch) -> None:
    from gpuctl.errors import ProviderError
    from gpuctl.providers.capabilities import Capability
    from tests.fakehost.cloud import FakePod

    def refuse(self, region: str, *, min_gb: int, tags: dict[str, str]):
        raise ProviderError("AccessDenied on CreateBucket", "grant s3:CreateBucket")

    monkeypatch.setattr(FakePod, "ensure_weights_cache", refuse, raising=False)
    monkeypatch.setattr(FakePod, "capabilities", FakePod.capabilities | {Capability.WEIGHTS_CACHE})
    pods.add_offer(make_offer("fakepod", "pod.l40s", 0.5))
    result = gpuctl("up", "tiny", "--name", "t1", "-y")
    assert result.exit_code == 0, result.stderr
    assert ("no weights cache in fake-east-1 (AccessDenied on CreateBucket (hint: grant s3:CreateBucket)); "
            "meta-llama/Meta-Llama-3-8B-Instruct is downloaded for this deployment only") in result.stderr
    record = deployments(isolated)["t1"]
    assert record.status == "running" and record.weights_cache is None


def test_a_create_whose_answer_never_comes_is_found_and_removed(gpuctl, pods: Cloud, isolated: Path,
                                                                monkeypatch) -> None:
    """The create outlives the client's deadline and lands at the provider a moment later: the teardown keeps
    looking for it by its tags (the create is unsettled) instead of declaring the deployment gone."""
    import threading
    import time

    from gpuctl.errors import TimeoutError_
    from tests.fakehost import cloud

    class LateAnswer(cloud.FakePod):
        def launch(self, request):
            def land() -> None:
                time.sleep(0.5)
                cloud.FakePod.launch(self, request)

            threading.Thread(target=land, daemon=True).start()
            raise TimeoutError_("Fake Pods did not answer the create within 60s")

    monkeypatch.setitem(cloud.CLASSES, "fakepod", LateAnswer)
    pods.add_offer(make_offer("fakepod", "pod.a", 0.4))
    result = gpuctl("up", "tiny", "--name", "late", "-y")
    assert result.exit_code == 7, result.stderr
    assert "for the create of 'late' that was cut off to show up" in result.stderr
    assert len(pods.world["instances"]) == 1 and pods.live() == [], "found by its tags and terminated"
    record = deployments(isolated)["late"]
    assert record.status == "terminated" and not record.attempts[-1].settled
