"""``gpuctl up --nodes 2`` end to end: one engine across two fake GPU hosts, placed together by a fake cloud.

The engine stand-in (tests/fakehost/engine_shim.py) checks the rank arguments each node gets the way
vLLM needs them (rank 0 serves with its own address as master; rank 1 joins it --headless) and exits 2
on anything vLLM would refuse; a rank can be made to crash, which must take every node down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.engines.vllm import MULTI_NODE_IMAGE
from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, make_offer, write_recipe
from tests.fakehost.fixtures import hosts_sharing_a_hub
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(fakehost_env: FakeHostEnv) -> Iterator[list[FakeGpuHost]]:
    """Two fake GPU hosts with vLLM's multi-node image; the first one's hub serves the weights to both."""
    with hosts_sharing_a_hub(fakehost_env, 2) as started:
        for host in started:
            host.preload(MULTI_NODE_IMAGE)
        yield started


@pytest.fixture
def cluster(fake_cloud: Cloud, hosts: list[FakeGpuHost], isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    assert hosts[0].hub is not None
    monkeypatch.setenv("HF_ENDPOINT", hosts[0].hub.url)
    fake_cloud.use_hosts(hosts)
    fake_cloud.add_offer(make_offer("fakecluster", "fcl.l40s", 1.5))
    return fake_cloud


def _args(host: FakeGpuHost, container: str) -> tuple[list[str], str]:
    inspect = json.loads(host.docker("inspect", container).stdout)[0]
    return inspect["Args"], inspect["HostConfig"]["NetworkMode"]


def test_one_engine_across_two_nodes(gpuctl, cluster: Cloud, hosts: list[FakeGpuHost], isolated: Path) -> None:
    write_recipe(isolated)
    result = gpuctl("up", "tiny", "--nodes", "2", "--name", "mn", "--ttl", "1h", "-y")
    assert result.exit_code == 0, result.stderr
    assert "deploy mn: tiny on 2 nodes of fakecluster 1 x L40S in fake-east-1 ($1.50/h) each, $3.00/h in total" \
        in result.stderr
    assert "look up before out: 1 x L40S in one machine (fakecluster, $1.50/h) serves tiny" in result.stderr
    assert result.stdout.startswith("mn is ready: http://127.0.0.1:8000/v1")
    record = StateStore(isolated).read().deployments["mn"]
    assert (record.status, record.nodes, record.price_per_hour, record.instance_id) == ("running", 2, 3.0, None)
    assert record.node_hosts == [f"root@{h.address}:22" for h in hosts]
    assert len(cluster.live()) == 2 and cluster.world["launches"][0]["nodes"] == 2

    master = hosts[0].address
    rank0, network0 = _args(hosts[0], "gpuctl-mn")
    rank1, network1 = _args(hosts[1], "gpuctl-mn")
    assert network0 == network1 == "host", "torch.distributed needs the machines' own network"
    assert rank0[rank0.index("--node-rank") + 1] == "0" and "--headless" not in rank0
    assert rank0[rank0.index("--master-addr") + 1] == master
    assert rank0[rank0.index("--host") + 1] == "127.0.0.1", "private: rank 0 serves on its loopback only"
    assert rank1[rank1.index("--node-rank") + 1] == "1" and "--headless" in rank1
    assert rank1[rank1.index("--master-addr") + 1] == master
    for args in (rank0, rank1):
        assert (args[args.index("--nnodes") + 1], args[args.index("--pipeline-parallel-size") + 1]) == ("2", "2")
    assert f"rank 1 joined {master} headless" in hosts[1].docker("logs", "gpuctl-mn").stdout
    assert all(any("watchdog-mn" in cmd for _, cmd in h.processes()) for h in hosts), "the TTL on every node"

    (row,) = json.loads(gpuctl("status", "--json").stdout)
    assert (row["health"], row["price_per_hour"]) == ("healthy", 3.0)

    down = gpuctl("down", "mn")
    assert down.exit_code == 0, down.stderr
    assert cluster.live() == []
    assert cluster.world["released"] == [record.tags]
    assert all(h.containers() == [] for h in hosts)


def test_a_failed_rank_tears_down_every_node(gpuctl, cluster: Cloud, hosts: list[FakeGpuHost],
                                              isolated: Path) -> None:
    write_recipe(isolated, env={"FAKE_ENGINE_EXIT": "3 rank 1 lost its GPU", "FAKE_ENGINE_EXIT_RANK": "1"})
    result = gpuctl("up", "tiny", "--nodes", "2", "--name", "bad", "-y")
    assert result.exit_code == 8, result.stderr
    assert "rank 1 exited, exit code 3" in result.stderr
    assert cluster.live() == [], "every node is gone"
    record = StateStore(isolated).read().deployments["bad"]
    assert record.status == "terminated" and "rank 1" in (record.error or "")
    assert cluster.world["released"] == [record.tags]
    assert all(h.containers() == [] for h in hosts)
