"""How the engine runs, one strategy per machine kind (``gpuctl.providers.capabilities.MACHINE_KINDS``).

* :class:`~.ssh_machine.SshMachineRuntime`: a machine rented from a provider, reached over SSH, engine in docker;
* :class:`~.provider_container.ProviderContainerRuntime`: the provider's own container is the engine (RunPod);
* :class:`~.user_host.UserHostRuntime`: the user's own machine (``--host``), engine in docker, machine untouched.

The lifecycle picks one per launch attempt with :func:`runtime_for` and never asks a provider's kind again.
"""

from __future__ import annotations

from gpuctl.deploy.runtimes.base import Runtime
from gpuctl.errors import UsageError
from gpuctl.providers.base import Provider


def runtime_for(provider: type[Provider] | Provider) -> type[Runtime]:
    """The runtime of ``provider``'s machine kind (exit 2 when it declares none: it cannot deploy)."""
    from gpuctl.deploy.runtimes.provider_container import ProviderContainerRuntime
    from gpuctl.deploy.runtimes.ssh_machine import SshMachineRuntime
    from gpuctl.deploy.runtimes.user_host import UserHostRuntime

    for runtime in (SshMachineRuntime, ProviderContainerRuntime, UserHostRuntime):
        if provider.can(runtime.kind):
            return runtime
    raise UsageError(f"provider '{provider.name}' declares no machine kind, so gpuctl cannot deploy there",
                     "'gpuctl providers' shows what each provider can do")


__all__ = ["Runtime", "runtime_for"]
