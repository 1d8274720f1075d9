"""The pure parts of replicas and multi-node: planning replicas, service names, rank arguments, declarations."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.deploy import service as services
from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.nodes import node_plan, rank_args
from gpuctl.deploy.router import settings, worker_url
from gpuctl.engines.vllm import MULTI_NODE_IMAGE
from gpuctl.errors import UsageError
from gpuctl.models.deployment import Deployment, RouterRecord
from gpuctl.plan import PlanRequest, build_plan, plan_inputs
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.capabilities import Capability, declaration_problems
from gpuctl.state import StateStore
from tests.fakehost.cloud import FakeCloud, FakeCluster, FakePod, make_offer


@pytest.fixture
def ctx(tmp_path: Path) -> DeployContext:
    registry = ProviderRegistry(classes={"fakecloud": FakeCloud, "fakepod": FakePod, "fakecluster": FakeCluster})
    return DeployContext(store=StateStore(tmp_path), registry=registry)


OFFERS = [make_offer("fakecloud", "c.a", 1.0), make_offer("fakecloud", "c.b", 1.1, region="fake-west-1"),
          make_offer("fakepod", "p.a", 1.2), make_offer("fakecloud", "c.c", 3.0)]


def test_replicas_take_the_cheapest_offer_each(ctx: DeployContext) -> None:
    request = PlanRequest(model="phi-3-mini")
    plans = services.plan_replicas(ctx, request, plan_inputs(request, offers=OFFERS), ["s-1", "s-2", "s-3"],
                                   spread=False)
    assert [p.name for p in plans] == ["s-1", "s-2", "s-3"]
    assert {p.offer.id for p in plans} == {"fakecloud:c.a:fake-east-1"}
    assert all(p.plans[0].engine.public and p.plans[0].engine.api_key_env for p in plans), \
        "replicas are reached by the router over the network, behind the key"
    assert [q.offer.id for q in plans[0].plans[1:]] == ["fakecloud:c.b:fake-west-1", "fakepod:p.a:fake-east-1"]
    assert services.price_per_hour(plans) == 3.0


def test_spread_replicas_go_round_robin_over_providers_and_regions(ctx: DeployContext) -> None:
    request = PlanRequest(model="phi-3-mini")
    plans = services.plan_replicas(ctx, request, plan_inputs(request, offers=OFFERS), ["s-1", "s-2", "s-3", "s-4"],
                                   spread=True)
    assert [p.offer.id for p in plans] == ["fakecloud:c.a:fake-east-1", "fakecloud:c.b:fake-west-1",
                                           "fakepod:p.a:fake-east-1", "fakecloud:c.a:fake-east-1"]
    assert services.price_per_hour(plans) == 4.3


def test_service_names_leave_room_for_the_replica_number() -> None:
    assert services.check_service_name("a" * 44) == "a" * 44
    with pytest.raises(UsageError, match="too long for a service"):
        services.check_service_name("a" * 45)
    assert services.replica_names("svc", 3, 2) == ["svc-3", "svc-4"]


def test_the_router_gets_its_key_on_stdin_and_a_metrics_port_of_its_own() -> None:
    config = settings(port=30000, policy="round_robin", api_key="k", workers=["http://a:8000"], ttl_seconds=60)
    assert (config["host"], config["prometheus_host"], config["prometheus_port"]) == ("127.0.0.1", "127.0.0.1", 30001)
    assert (config["api_key"], config["stop_after_seconds"], config["worker_urls"]) == ("k", 60, ["http://a:8000"])


def test_a_replica_on_the_routers_machine_is_reached_on_its_loopback() -> None:
    replica = Deployment(name="s-1", model="m", provider="fakecloud", idempotency_token="t",
                         endpoint="http://10.0.0.5:8000", host="root@10.0.0.5:22", host_port=8000)
    here = RouterRecord(placement="local", port=30000, url="http://127.0.0.1:30000", policy="cache_aware")
    there = here.model_copy(update={"placement": "host", "host": "root@10.0.0.5:22"})
    assert worker_url(replica, here) == "http://10.0.0.5:8000"
    assert worker_url(replica, there) == "http://127.0.0.1:8000"


def test_rank_arguments() -> None:
    inputs = plan_inputs(PlanRequest(model="llama-3.1-70b"), offers=[make_offer("fakecluster", "x.a", 2.0, count=4)])
    plan = build_plan(PlanRequest(model="llama-3.1-70b", nodes=2, ttl_seconds=3600), inputs.recipe, inputs.offers,
                      hf_token_present=True)
    planned = node_plan(plan, 2)
    assert (planned.engine.image, planned.nodes, planned.estimated_cost_usd) == (MULTI_NODE_IMAGE, 2, 4.0)
    rank0 = rank_args(planned.engine, nodes=2, rank=0, master_addr="10.1.0.4", public=False)
    rank1 = rank_args(planned.engine, nodes=2, rank=1, master_addr="10.1.0.4", public=False)
    assert rank0[rank0.index("--host") + 1] == "127.0.0.1" and "--headless" not in rank0
    assert rank0[-8:] == ["--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank", "0", "--master-addr",
                          "10.1.0.4"]
    assert rank1[-1] == "--headless" and rank1[rank1.index("--node-rank") + 1] == "1"
    assert rank0[rank0.index("--tensor-parallel-size") + 1] == "4", "tensor parallel inside a node"
    public = rank_args(planned.engine, nodes=2, rank=0, master_addr="10.1.0.4", public=True)
    assert public[public.index("--host") + 1] == "0.0.0.0"


def test_tgi_has_no_multi_node_mode() -> None:
    inputs = plan_inputs(PlanRequest(model="llama-3-8b", engine="tgi"), offers=[make_offer("fakecluster", "x", 1.0)])
    plan = build_plan(PlanRequest(model="llama-3-8b", engine="tgi"), inputs.recipe, inputs.offers,
                      hf_token_present=True)
    with pytest.raises(UsageError, match="tgi has none"):
        node_plan(plan, 2)


def test_multi_node_is_declared_with_ssh_machines_found_by_tag() -> None:
    assert declaration_problems(FakeCluster.capabilities) == []
    lonely = frozenset({Capability.LAUNCH, Capability.ENGINE_CONTAINER, Capability.MULTI_NODE})
    assert declaration_problems(lonely) == ["declares multi-node without ssh-machine",
                                            "declares multi-node without list-by-tag"]
