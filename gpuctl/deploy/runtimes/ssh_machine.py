"""A machine rented from a provider (Lambda, AWS), reached over SSH with the project key, running the engine in docker.

The machine is new, so its host key is pinned on first contact; the TTL watchdog stops the engine and
shuts the machine down; the teardown terminates the instance (found by its tags when no id was
recorded), forgets the pinned key (the address goes to someone else next), and aborts the uploads of
a weights mirror it left open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.deploy.runtimes.host_engine import HostEngineRuntime
from gpuctl.host.shell import Shell
from gpuctl.host.target import HostTarget
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.plan import DeployPlan
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.removal import Removals
    from gpuctl.models.deployment import Deployment


class SshMachineRuntime(HostEngineRuntime):
    kind = Capability.SSH_MACHINE
    pin_new_host_key = True
    stop_machine_on_ttl = True

    def launch_request(self, plan: DeployPlan, token: str) -> LaunchRequest:
        from gpuctl.host.keys import ensure_project_key

        request = super().launch_request(plan, token)
        return request.model_copy(update={"ssh_public_key": ensure_project_key(self.ctx.state_dir).public_key})

    def reachable(self, instance: Instance) -> bool:
        return instance.status == "running" and bool(instance.ssh_host)

    def target(self, instance: Instance) -> HostTarget:
        return HostTarget(kind="ssh", host=instance.ssh_host, user=instance.ssh_user, port=instance.ssh_port)

    @classmethod
    def release(cls, ctx: DeployContext, deployment: Deployment, removals: Removals, shell: Shell | None) -> None:
        """Open mirror uploads, the instance(s), the pinned host key; the machine's disk goes with it."""
        from gpuctl.deploy.removal import abort_mirror_uploads, forget_host_key, terminate_all

        abort_mirror_uploads(ctx, deployment, removals)
        terminate_all(ctx, deployment, removals)
        if deployment.host:
            forget_host_key(ctx, deployment.host)
