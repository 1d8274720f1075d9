"""``gpuctl bench --sweep`` end to end: a real gpuctl process rents one fake machine per GPU from the fake cloud,
deploys the fake engine on it (whose speed is set per GPU model), benches it, tears it down, and ranks the
candidates by measured dollars per million output tokens, each beside its estimate.

Every machine of the fake cloud is a fake GPU host of its own (``Cloud.host_for``); each test ends with no
instance left at the provider and no container on any host, whatever happened to the sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, gpuctl_process, make_offer, run_gpuctl, wait_until, write_recipe
from tests.fakehost.host import FakeGpu, FakeGpuHost
from tests.standins.hub_server import HubServer
from tests.standins.mock_openai import MockProcess

pytestmark = pytest.mark.integration

#: the machines: the GPU nvidia-smi reports, the catalog's SKU, the offer's price per hour
MACHINES = {
    "l40s": (FakeGpu("NVIDIA L40S", 46068), "L40S", 0.80),
    "a100": (FakeGpu("NVIDIA A100-SXM4-80GB", 81920), "A100-80GB-SXM", 1.20),
    "h100": (FakeGpu("NVIDIA H100 80GB HBM3", 81559), "H100-SXM", 2.00),
}
#: how fast each serves: at 4 requests in flight a decode step takes 48, 20 and 8 ms, so about 83, 200 and
#: 500 output tokens/s: the dearest hour (H100) is the cheapest token, the cheapest hour (L40S) the dearest
SPEEDS = {
    "NVIDIA L40S": {"prefill_tokens_per_s": 20000, "decode_ms": 40, "decode_ms_per_sequence": 2,
                    "kv_cache_tokens": 4096},
    "NVIDIA A100-SXM4-80GB": {"prefill_tokens_per_s": 40000, "decode_ms": 16, "decode_ms_per_sequence": 1,
                              "kv_cache_tokens": 4096},
    "NVIDIA H100 80GB HBM3": {"prefill_tokens_per_s": 80000, "decode_ms": 6, "decode_ms_per_sequence": 0.5,
                              "kv_cache_tokens": 4096},
}
#: for the ranking: each cost per token more than twice the next (a step of 158, 44 and 12 ms at 4 in flight),
#: so a candidate slowed by a loaded machine (two run side by side) keeps its place
SPREAD_SPEEDS = {
    "NVIDIA L40S": {**SPEEDS["NVIDIA L40S"], "decode_ms": 150},
    "NVIDIA A100-SXM4-80GB": {**SPEEDS["NVIDIA A100-SXM4-80GB"], "decode_ms": 40},
    "NVIDIA H100 80GB HBM3": {**SPEEDS["NVIDIA H100 80GB HBM3"], "decode_ms": 10},
}
LOAD = ["--input-len", "32", "--output-len", "16", "-c", "4", "-n", "24"]
SWEEP_TIMEOUT_S = 300.0


def _step_ms(gpu: str, running: int, speeds: dict[str, dict[str, float]] = SPEEDS) -> float:
    speed = speeds[gpu]
    return speed["decode_ms"] + speed["decode_ms_per_sequence"] * running


class World:
    """The fake cloud with one fake host per GPU, each able to fetch weights from the stand-in hub."""

    def __init__(self, cloud: Cloud, hosts: dict[str, FakeGpuHost]) -> None:
        self.cloud, self.hosts = cloud, hosts

    def sweep(self, *args: str, timeout: float = SWEEP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return run_gpuctl("bench", "--sweep", "--for", "tiny", *args, timeout=timeout)

    def assert_nothing_left(self) -> None:
        assert self.cloud.live() == [], "an instance is still billing"
        for label, host in self.hosts.items():
            assert host.containers() == [], f"a container is left on the {label} host"


@pytest.fixture
def world(fake_cloud: Cloud, make_fake_gpu_host: Callable[..., FakeGpuHost], isolated: Path) -> World:
    hosts = {label: make_fake_gpu_host([gpu]) for label, (gpu, _, _) in MACHINES.items()}
    hub = next(reversed(hosts.values()))  # HF_ENDPOINT is the hub of the host made last
    for label, host in hosts.items():
        host.reach_hub_of(hub)
        _, sku, price = MACHINES[label]
        fake_cloud.add_offer(make_offer("fakecloud", f"fc.{label}", price, gpu=sku))
        fake_cloud.host_for(f"fc.{label}", host)
    return World(fake_cloud, hosts)


def _rows(stdout: str) -> list[dict]:
    return json.loads(stdout)


def test_every_candidate_is_measured_and_ranked_by_measured_cost_per_token(world: World, isolated: Path) -> None:
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(SPREAD_SPEEDS)})
    result = world.sweep("--gpu", "l40s,a100,h100", *LOAD, "--slo", "ttft=2000,itl=400", "--budget", "5", "-y",
                         "--json")
    assert result.returncode == 0, result.stderr
    world.assert_nothing_left()
    assert "estimated cost of the whole sweep: $" in result.stderr, "the plan and its cost are shown before"
    assert "3 candidates, 2 at a time, each in a process of its own" in result.stderr
    rows = _rows(result.stdout)
    # what the configuration makes of it: 4 tokens per decode step at the configured price
    expected = sorted(MACHINES, key=lambda label: MACHINES[label][2] * _step_ms(MACHINES[label][0].name, 4,
                                                                                SPREAD_SPEEDS) / 4)
    assert [r["label"] for r in rows] == [label.upper() for label in expected] == ["H100", "A100", "L40S"], (
        "the dearest hour is the cheapest token here")
    assert all(r["status"] == "measured" and r["meets_slo"] for r in rows), rows
    for row in rows:
        _, sku, price = MACHINES[row["label"].lower()]
        gpu = next(g.name for g, s, _ in MACHINES.values() if s == sku)
        assert (row["gpu"], row["price_per_hour"], row["concurrency"]) == (sku, price, 4)
        # the stand-in's arithmetic: a token waits one decode step of the 1 to 4 requests running (on average: a
        # late token is followed by an early one, as the engine keeps its own clock)
        itl = row["run"]["itl_ms"]["mean"]
        fastest, slowest = _step_ms(gpu, 1, SPREAD_SPEEDS), _step_ms(gpu, 4, SPREAD_SPEEDS)
        assert 0.9 * fastest <= itl < 2 * slowest + 5, (row["label"], itl)
        assert row["usd_per_1m_output_tokens"] == pytest.approx(price / 3600 / row["output_tokens_per_s"] * 1e6,
                                                                rel=0.02)
        estimate = row["estimate"]
        assert estimate["inputs"]["concurrency"] == 4, "the estimate beside a measurement is at its load"
        assert row["estimated_usd_per_1m_output_tokens"] == pytest.approx(
            price / 3600 / estimate["output_tokens_per_s"] * 1e6, rel=0.01)
        assert row["cost_usd"] is not None and 0 <= row["cost_usd"] < 0.1
    costs = [r["usd_per_1m_output_tokens"] for r in rows]
    assert costs == sorted(costs)
    launches = world.cloud.world["launches"]
    assert sorted(launch["offer"] for launch in launches) == [
        f"fakecloud:fc.{label}:fake-east-1" for label in ("a100", "h100", "l40s")]
    assert all(launch["ttl"] and launch["ttl"] >= 1800 for launch in launches), "each candidate has its TTL"

    # the measurements reach the history later estimates learn from, with their conditions
    history = StateStore(isolated).read().bench_runs
    assert sorted((h.gpu, h.engine, h.run.concurrency) for h in history) == [
        ("A100-80GB-SXM", "vllm", 4), ("H100-SXM", "vllm", 4), ("L40S", "vllm", 4)]
    assert all(h.recipe == "tiny" and h.family and h.estimate is not None for h in history)
    fit = run_gpuctl("fit", "tiny", "--gpu", "h100-sxm", "--count", "1", "--input-len", "32", "--output-len", "16",
                     "--concurrency", "4", "--json")
    (estimate,) = [row["estimate"] for row in json.loads(fit.stdout)]
    h100 = rows[0]
    assert (estimate["basis"], estimate["runs"]) == ("measured", 1)
    assert estimate["output_tokens_per_s"] == pytest.approx(h100["output_tokens_per_s"], rel=0.01)
    prices = run_gpuctl("prices", "--for", "tiny", "--input-len", "32", "--output-len", "16", "--concurrency", "4",
                        "--json")
    assert prices.returncode == 0, prices.stderr
    basis = {row["gpu"]: row["estimate"]["basis"] for row in json.loads(prices.stdout)}
    assert basis == {"L40S": "measured", "A100-80GB-SXM": "measured", "H100-SXM": "measured"}


def test_the_slo_picks_the_load_each_candidate_is_shown_at(world: World, isolated: Path) -> None:
    # at 16 requests in flight a step takes 72 ms on the L40S (misses itl=60) and 32 ms on the A100 (meets)
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(SPEEDS)})
    result = world.sweep("--gpu", "l40s,a100", "--input-len", "32", "--output-len", "16", "-c", "4,16", "-n", "32",
                         "--slo", "itl=60", "-y", "--json")
    assert result.returncode == 0, result.stderr
    world.assert_nothing_left()
    rows = {r["label"]: r for r in _rows(result.stdout)}
    assert (rows["L40S"]["concurrency"], rows["L40S"]["meets_slo"]) == (4, True), "its cheaper load misses the SLO"
    assert (rows["A100"]["concurrency"], rows["A100"]["meets_slo"]) == (16, True), "its cheapest load meets it"
    assert rows["L40S"]["estimate"]["inputs"]["concurrency"] == 4 and rows["A100"]["estimate"]["inputs"][
        "concurrency"] == 16
    history = StateStore(isolated).read().bench_runs
    assert sorted((h.gpu, h.run.concurrency) for h in history) == [
        ("A100-80GB-SXM", 4), ("A100-80GB-SXM", 16), ("L40S", 4), ("L40S", 16)], "every load is kept, shown or not"
    l40s_16 = next(h.run for h in history if (h.gpu, h.run.concurrency) == ("L40S", 16))
    assert l40s_16.itl_ms is not None and l40s_16.itl_ms.p50 > 60
    assert l40s_16.cost_per_1m_output_tokens < rows["L40S"]["usd_per_1m_output_tokens"]


def test_a_failed_candidate_has_its_row_and_the_others_are_measured(world: World, isolated: Path) -> None:
    # the H100's engine dies at start (the speed table does not know its GPU); the L4 offer has no capacity
    known = {gpu: speed for gpu, speed in SPEEDS.items() if "H100" not in gpu}
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(known)})
    world.cloud.add_offer(make_offer("fakecloud", "fc.l4", 0.40, gpu="L4"), fault="capacity")
    result = world.sweep("--gpu", "l40s,h100,l4,a100", *LOAD, "-y", "--json")
    assert result.returncode == 0, result.stderr
    world.assert_nothing_left()
    rows = {r["label"]: r for r in _rows(result.stdout)}
    assert [r["label"] for r in _rows(result.stdout)][:2] == ["A100", "L40S"], "measured rows first, cheapest first"
    assert rows["A100"]["status"] == rows["L40S"]["status"] == "measured"
    assert rows["H100"]["status"] == "failed" and "engine" in rows["H100"]["detail"], rows["H100"]
    assert rows["L4"]["status"] == "failed" and "no capacity" in rows["L4"]["detail"], rows["L4"]
    assert rows["H100"]["usd_per_1m_output_tokens"] is None and rows["H100"]["estimate"] is not None
    records = StateStore(isolated).read().deployments
    assert {r.status for r in records.values()} == {"terminated"}, "every candidate's record ends terminated"


@pytest.mark.parametrize("group", [False, True], ids=["sigint-to-gpuctl", "ctrl-c-to-its-process-group"])
def test_ctrl_c_mid_sweep_tears_down_every_launched_candidate(world: World, isolated: Path, group: bool) -> None:
    """SIGINT to gpuctl alone (it passes it on to its candidates), or to its whole process group as a terminal's
    Ctrl-C sends it (the candidates and their load generators get it too, and then gpuctl's again)."""
    # slow enough that the bench is still running when the interrupt comes
    slow = {gpu: {**speed, "decode_ms": 200} for gpu, speed in SPEEDS.items()}
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(slow)})
    sweep = gpuctl_process("bench", "--sweep", "--for", "tiny", "--gpu", "l40s,a100,h100", "--input-len", "32",
                           "--output-len", "64", "-c", "2", "-n", "500", "-y", "--json", start_new_session=True)
    try:
        running = [world.hosts["l40s"], world.hosts["a100"]]  # the first two, launched side by side
        wait_until(lambda: all(any(c.endswith(" running") for c in h.containers()) for h in running),
                   "both engines to run", timeout=120)
        wait_until(lambda: all(_served(h) for h in running), "both benches to send requests", timeout=60)
        if group:
            os.killpg(sweep.pid, signal.SIGINT)
        else:
            sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, stderr
    assert "sweep interrupted: every candidate it launched is torn down" in stderr
    world.assert_nothing_left()
    rows = {r["label"]: r for r in _rows(stdout)}
    assert rows["L40S"]["status"] == rows["A100"]["status"] == "interrupted"
    assert rows["H100"]["status"] == "not launched" and "interrupted" in rows["H100"]["detail"]
    assert len(world.cloud.world["launches"]) == 2


_RUNNING = ("import urllib.request; text = urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=5).read()"
            ".decode(); print(max([float(l.split()[-1]) for l in text.splitlines() "
            "if l.startswith('vllm:num_requests_running')] or [0]))")


def _served(host: FakeGpuHost) -> bool:
    """Whether the host's engine has the bench's two requests in flight (the health wait sends one at a time)."""
    probe = host.run_inside(["python3", "-c", _RUNNING])
    return probe.returncode == 0 and float(probe.stdout or 0) >= 2


def test_a_budget_stops_launching_and_says_so(world: World, isolated: Path) -> None:
    write_recipe(isolated, env={"FAKE_ENGINE_SPEED": json.dumps(SPEEDS)})
    args = ["--gpu", "l40s,h100,a100", *LOAD]
    plan = world.sweep(*args, "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    costs = {c["label"]: c["cost_usd"] for c in json.loads(plan.stdout)["candidates"]}
    assert costs["L40S"] < costs["H100"], "the same times at a dearer hour"
    budget = (costs["L40S"] + costs["H100"]) / 2  # the L40S fits, the H100 does not
    # one at a time (in gpuctl's own process): after the L40S, what it cost is known, and the H100 alone exceeds
    result = world.sweep(*args, "--budget", f"{budget:.4f}", "--parallel", "1", "-y", "--json")
    assert result.returncode == 0, result.stderr
    assert "3 candidate(s), one after the other" in result.stderr
    world.assert_nothing_left()
    assert "not launching H100, A100: the budget of $" in result.stderr
    assert "(over the budget: launched only if those before cost less than estimated)" in result.stderr, (
        "the plan says so before the question")
    rows = {r["label"]: r for r in _rows(result.stdout)}
    assert rows["L40S"]["status"] == "measured"
    assert rows["H100"]["status"] == rows["A100"]["status"] == "not launched"
    assert "would be exceeded" in rows["H100"]["detail"]
    assert [launch["offer"] for launch in world.cloud.world["launches"]] == ["fakecloud:fc.l40s:fake-east-1"]


def test_a_candidate_whose_provider_runs_the_engine(fake_cloud: Cloud, isolated: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A container-style provider (RunPod's kind): the endpoint is public, behind the API key gpuctl made."""
    write_recipe(isolated)
    with HubServer(auto=True) as hub, MockProcess("--model", "meta-llama/Meta-Llama-3-8B-Instruct", "--ttft-ms", "5",
                                                  "--itl-ms", "5") as engine:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        fake_cloud.set(endpoint_url=engine.url)
        fake_cloud.add_offer(make_offer("fakepod", "fp.l40s", 0.79))
        result = run_gpuctl("bench", "--sweep", "--for", "tiny", "--gpu", "l40s", "--input-len", "32", "--output-len",
                            "16", "-c", "2", "-n", "10", "-y", "--json")
        served = engine.stats()["records"]
    assert result.returncode == 0, result.stderr
    assert fake_cloud.live() == []
    (row,) = _rows(result.stdout)
    assert (row["status"], row["provider"], row["concurrency"], row["run"]["requests_ok"]) == ("measured", "fakepod", 2,
                                                                                               10)
    (launch,) = fake_cloud.world["launches"]
    assert launch["engine"] and launch["secrets"] == ["VLLM_API_KEY"], "the provider runs the engine, with its key"
    assert len(served) >= 10 + 2, "the bench reached the provider's endpoint"
    assert not (isolated / ".gpuctl" / "secrets").exists() or not any((isolated / ".gpuctl" / "secrets").iterdir())
