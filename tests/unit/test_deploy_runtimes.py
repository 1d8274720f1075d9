"""The runtimes on their own: chosen by machine kind, patient with a provider that answers late or garbled.
(How a host runtime sees an engine that stopped, EngineWatch, is tested in test_host_engine_watch.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.deploy.context import DeployContext, Timeouts
from gpuctl.deploy.journal import Journal
from gpuctl.deploy.request import UpRequest
from gpuctl.deploy.run import DeployRun
from gpuctl.deploy.runtimes import runtime_for
from gpuctl.deploy.runtimes.base import MAX_POLL_FAILURES
from gpuctl.deploy.runtimes.provider_container import ProviderContainerRuntime
from gpuctl.deploy.runtimes.ssh_machine import SshMachineRuntime
from gpuctl.deploy.runtimes.user_host import UserHostRuntime
from gpuctl.errors import TimeoutError_, UsageError
from gpuctl.models.deployment import Deployment
from gpuctl.models.instance import Instance
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.ssh import HostProvider
from gpuctl.state import StateStore
from tests.fakehost.cloud import FakeCloud, FakePod


class NoMachine(Provider):
    name = "listing-only"
    display_name = "Listing only"

    def offers(self, query):  # type: ignore[no-untyped-def]
        return []


def test_the_runtime_follows_the_machine_kind() -> None:
    assert runtime_for(FakeCloud) is SshMachineRuntime
    assert runtime_for(FakePod()) is ProviderContainerRuntime
    assert runtime_for(HostProvider) is UserHostRuntime
    with pytest.raises(UsageError, match="declares no machine kind"):
        runtime_for(NoMachine)


class SlowPod(FakePod):
    """Answers its first ``slow`` status polls with a timeout (a 15 s answer past the client's deadline)."""

    slow = 0
    polls = 0

    def get(self, instance_id: str) -> Instance:
        SlowPod.polls += 1
        if SlowPod.polls <= SlowPod.slow:
            raise TimeoutError_("RunPod API did not answer GET /pods/p-1 within 10s")
        return Instance(provider=self.name, id=instance_id, status="running", endpoint_url="http://127.0.0.1:9")


def runtime(tmp_path: Path) -> ProviderContainerRuntime:
    store = StateStore(tmp_path)
    ctx = DeployContext(store=store, registry=ProviderRegistry(classes={}), timeouts=Timeouts(poll=0.01))
    record = ctx.records.reserve(Deployment(name="d", model="m", provider="fakepod", idempotency_token="t"),
                                 allocate_port=False)
    run = DeployRun(ctx, UpRequest(name="d", plans=[]), Journal(ctx.records, record), {})
    return ProviderContainerRuntime(run, SlowPod())


@pytest.mark.parametrize(("slow", "comes_up"), [(1, True), (MAX_POLL_FAILURES - 1, True), (MAX_POLL_FAILURES, False)])
def test_slow_status_polls_are_asked_again_a_bounded_number_of_times(tmp_path: Path, slow: int,
                                                                     comes_up: bool) -> None:
    SlowPod.slow, SlowPod.polls = slow, 0
    starting = Instance(provider="fakepod", id="p-1", status="pending")
    if comes_up:
        assert runtime(tmp_path).wait_for_instance(starting).status == "running"
    else:
        with pytest.raises(TimeoutError_, match="did not answer"):
            runtime(tmp_path).wait_for_instance(starting)
