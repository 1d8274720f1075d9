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
from gpuctl.deploy.watchdog import arm, disarm, interval_for
from gpuctl.errors import UsageError
from gpuctl.host.errors import HostCheckError
from gpuctl.host.nvidia import QUERY_ARGV
from gpuctl.host.shell import LocalShell
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
    assert (offer.provider, offer.gpu, offer.gpu_count, offer.vram_gb) == ("ssh", "H100-80GB", 2, 80.0)
    assert (offer.price_per_hour, offer.price_per_gpu_hour, offer.instance_type, offer.region) == (
        5.0, 2.5, "ubuntu@gpu-box:2222", "gpu-box")
    assert HostProvider().get("ubuntu@gpu-box:2222").model_dump(include={"id", "status", "ssh_host", "ssh_port",
                                                                          "ssh_user"}) == {
        "id": "ubuntu@gpu-box:2222", "status": "running", "ssh_host": "gpu-box", "ssh_port": 2222,
        "ssh_user": "ubuntu"}


@pytest.mark.parametrize(("rows", "message"), [
    (("Quantum Annealer 9000, 1024, 0, 0",), "a GPU gpuctl's catalog does not know: Quantum Annealer 9000"),
    (("NVIDIA L40S, 46068, 0, 0", "NVIDIA H100 80GB HBM3, 81559, 0, 0"), "mixes GPU models (H100-80GB, L40S)"),
])
def test_hosts_gpuctl_cannot_plan_for(rows: tuple[str, ...], message: str) -> None:
    with pytest.raises(HostCheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        host_offer(smi(*rows), parse_target("local"))


def test_the_watchdog_runs_on_the_host_until_disarmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    shell = LocalShell()
    armed = arm(shell, name="web", container="gpuctl-web", seconds_left=3600, stop_machine=False)
    files = sorted(p.name for p in (tmp_path / ".gpuctl").iterdir())
    assert files == ["watchdog-web.log", "watchdog-web.sh", "web.deadline"]
    script = (tmp_path / ".gpuctl" / "watchdog-web.sh").read_text()
    assert "container=gpuctl-web" in script and "shutdown_command=true" in script and "interval=30" in script
    assert int((tmp_path / ".gpuctl" / "web.deadline").read_text()) == pytest.approx(time.time() + 3600, abs=5)
    assert Path(f"/proc/{armed.pid}").exists()
    disarm(shell, name="web", pid=armed.pid)
    deadline = time.monotonic() + 5
    while _alive(armed.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(armed.pid)
    assert list((tmp_path / ".gpuctl").iterdir()) == []
    assert (interval_for(60), interval_for(5), interval_for(86400)) == (6, 1, 30)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_gated_model_needs_the_token_before_launch(tmp_path: Path) -> None:
    from gpuctl.plan import build_plan

    inputs = plan_inputs(PlanRequest(model="llama-3-8b"), offers=[make_offer("fakecloud", "fc.a", 1.0)])
    plan = build_plan(PlanRequest(model="llama-3-8b"), inputs.recipe, inputs.offers, hf_token_present=False)
    with pytest.raises(UsageError, match="is gated and no Hugging Face token is set"):
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
