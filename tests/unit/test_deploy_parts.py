"""Parts of the deploy lifecycle on their own: the host's offer, the watchdog, candidate plans, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.hosts import host_offer
from gpuctl.deploy.planning import candidate_plans
from gpuctl.deploy.proposal import required_secrets
from gpuctl.deploy.reconcile import owner_alive, stale
from gpuctl.deploy.signals import shielded, terminate_interrupts
from gpuctl.errors import CredentialsError, UsageError
from gpuctl.host.errors import HostCheckError
from gpuctl.host.nvidia import QUERY_ARGV
from gpuctl.host.target import parse_target
from gpuctl.models.deployment import Deployment
from gpuctl.plan import PlanRequest, plan_inputs
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.ssh import HostProvider
from gpuctl.state import StateStore
from tests.fakehost.cloud import FakeCloud, FakePod, make_offer
from tests.fakehost.shells import ScriptedShell


def smi(*rows: str) -> ScriptedShell:
    return ScriptedShell().on(*QUERY_ARGV, stdout="".join(f"{i}, {r}\n" for i, r in enumerate(rows)))


def test_the_host_offers_its_gpus_at_the_given_price() -> None:
    offer = host_offer(smi("NVIDIA H100 80GB HBM3, 81559, 0, 0", "NVIDIA H100 80GB HBM3, 81559, 3, 0"),
                       parse_target("ubuntu@gpu-box:2222"), price_per_hour=5.0)
    assert (offer.provider, offer.gpu, offer.gpu_count, offer.vram_gb) == ("ssh", "H100-SXM", 2, 80.0)
    assert (offer.price_per_hour, offer.price_per_gpu_hour, offer.instance_type, offer.region) == (
        5.0, 2.5, "ubuntu@gpu-box:2222", "gpu-box")
    assert HostProvider().get("ubuntu@gpu-box:2222").model_dump(include={"id", "status", "ssh_host", "ssh_port",
                                                                          "ssh_user"}) == {
        "id": "ubuntu@gpu-box:2222", "status": "running", "ssh_host": "gpu-box", "ssh_port": 2222,
        "ssh_user": "ubuntu"}


@pytest.mark.parametrize(("rows", "message"), [
    (("Quantum Annealer 9000, 1024, 0, 0",), "a GPU gpuctl's catalog does not know: Quantum Annealer 9000"),
    (("NVIDIA L40S, 46068, 0, 0", "NVIDIA H100 80GB HBM3, 81559, 0, 0"), "mixes GPU models (H100-SXM, L40S)"),
])
def test_hosts_gpuctl_cannot_plan_for(rows: tuple[str, ...], message: str) -> None:
    with pytest.raises(HostCheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        host_offer(smi(*rows), parse_target("local"))


def test_a_gated_model_needs_the_token_before_launch(tmp_path: Path) -> None:
    from gpuctl.plan import build_plan

    inputs = plan_inputs(PlanRequest(model="llama-3-8b"), offers=[make_offer("fakecloud", "fc.a", 1.0)])
    plan = build_plan(PlanRequest(model="llama-3-8b"), inputs.recipe, inputs.offers, hf_token_present=False)
    with pytest.raises(CredentialsError, match="is gated and no Hugging Face token is set"):
        required_secrets(plan, None)
    assert required_secrets(plan, "hf_x") == {"HF_TOKEN": "hf_x"}


def test_candidates_skip_providers_that_cannot_deploy_and_make_pods_public(tmp_path: Path) -> None:
    class ReadOnly(FakeCloud):
        name = "readonly"
        capabilities = frozenset()  # lists prices only: cannot deploy

    registry = ProviderRegistry(classes={"fakecloud": FakeCloud, "fakepod": FakePod, "readonly": ReadOnly})
    ctx = DeployContext(store=StateStore(tmp_path), registry=registry)
    offers = [make_offer("readonly", "r.a", 0.1), make_offer("fakepod", "p.a", 0.2),
              make_offer("fakecloud", "c.a", 0.3), make_offer("fakecloud", "c.b", 0.4)]
    request = PlanRequest(model="phi-3-mini")
    plans = candidate_plans(ctx, request, plan_inputs(request, offers=offers), limit=2)
    assert [(p.offer.id, p.engine.public) for p in plans] == [("fakepod:p.a:fake-east-1", True),
                                                              ("fakecloud:c.a:fake-east-1", False)]
    assert plans[0].engine.api_key_env == "VLLM_API_KEY" and plans[1].engine.api_key_env is None
    with pytest.raises(UsageError, match=r"their providers \(readonly\) cannot deploy"):
        candidate_plans(ctx, request, plan_inputs(request, offers=offers[:1]))


def test_owners_and_stale_records() -> None:
    import socket

    def record(**fields: object) -> Deployment:
        return Deployment(name="x", model="m", provider="p", idempotency_token="t", **fields)  # type: ignore[arg-type]

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    assert owner_alive(record(owner_pid=os.getpid(), owner_host=here))
    assert not owner_alive(record(owner_pid=gone.pid, owner_host=here))
    assert owner_alive(record(owner_pid=gone.pid, owner_host="elsewhere")), "cannot tell: assume it lives"
    assert stale(record(status="provisioning", owner_pid=gone.pid, owner_host=here))
    assert not stale(record(status="provisioning", owner_pid=os.getpid(), owner_host=here))
    assert stale(record(status="failed")) and not stale(record(status="running"))


def test_sigterm_interrupts_like_ctrl_c_and_cleanup_is_shielded() -> None:
    with pytest.raises(KeyboardInterrupt), terminate_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    notes: list[str] = []

    class Reporter:
        def warn(self, message: str) -> None:
            notes.append(message)

    with shielded(Reporter()):  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert len(notes) == 2 and "'gpuctl down NAME' finishes the cleanup" in notes[0]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_host_clock_reading_errs_towards_an_early_expiry() -> None:
    from gpuctl.deploy.watchdog import host_seconds

    assert host_seconds("1732345678.250000000") == 1732345678.25
    assert host_seconds("1732345678.N") == 1732345679.0
    assert host_seconds("1732345678") == 1732345679.0
