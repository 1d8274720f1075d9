"""The user's own machine (``--host USER@ADDR`` or ``--host local``): nothing is rented, launched or stopped.

Its host key must be known or accepted by the user; it is never bootstrapped, and its docker is never
restarted or reconfigured (a missing piece is reported, exit 4); the TTL watchdog stops only the
engine container; the teardown removes what gpuctl started there for this deployment (engine and
fetcher containers, its watchdog and their files, found by the deployment's token) and never touches
the machine or its docker daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.deploy.runtimes.host_engine import HostEngineRuntime
from gpuctl.host.shell import Shell
from gpuctl.host.target import HostTarget, parse_target
from gpuctl.models.instance import Instance, LaunchRequest
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:
    from gpuctl.deploy.context import DeployContext
    from gpuctl.deploy.removal import Removals
    from gpuctl.models.deployment import Deployment


class UserHostRuntime(HostEngineRuntime):
    kind = Capability.USER_HOST
    stop_machine_on_ttl = False
    user_owned = True

    @property
    def pin_new_host_key(self) -> bool:
        return False  # the user's machine: its key is known, or the user accepts it

    def launch(self, request: LaunchRequest) -> Instance:
        return self.provider.launch(request)  # the machine is already there: nothing is created

    def reachable(self, instance: Instance) -> bool:
        return instance.status == "running"

    def target(self, instance: Instance) -> HostTarget:
        return self.run.request.host or parse_target(instance.id)

    @classmethod
    def release(cls, ctx: DeployContext, deployment: Deployment, removals: Removals, shell: Shell | None) -> None:
        """What gpuctl started on the machine for this deployment, nothing else."""
        from gpuctl.deploy.access import open_host
        from gpuctl.deploy.host_cleanup import clean_deployment

        if not deployment.host or not deployment.container:
            return  # it never got as far as the host check: nothing was started there
        with ctx.reporter.step(f"removing what gpuctl started for {deployment.name} on {deployment.host}"), \
                open_host(ctx, deployment, shell=shell) as host:
            clean_deployment(host, deployment, removals)
