"""The ``ssh`` provider (``gpuctl up --host``): a machine the user already has, reached over SSH or locally.

Its "instance" is the host itself, named by the target string (``user@addr:port`` or ``local``). It
launches nothing and terminates nothing: ``gpuctl down`` removes the engine container and never
touches the machine. Its offer is read from the host itself (``gpuctl.deploy.hosts.host_offer``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuctl.host.target import parse_target
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability

if TYPE_CHECKING:  # loaded on first use: discovering providers (every 'gpuctl prices') stays cheap
    from gpuctl.models.instance import Instance, LaunchRequest


class HostProvider(Provider):
    """Deploys to the user's own machine; see the module docstring."""

    name = "ssh"
    display_name = "Your own host (--host)"
    capabilities = frozenset({Capability.LAUNCH, Capability.USER_HOST})

    def offers(self, query: OfferQuery) -> list[Offer]:
        return []  # a host's offer is read from the host itself (host_offer), not listed

    def launch(self, request: LaunchRequest) -> Instance:
        return self._instance(request.offer.instance_type, request.offer)

    def get(self, instance_id: str) -> Instance:
        return self._instance(instance_id)

    def terminate(self, instance_id: str) -> None:
        """Nothing to do: the machine is the user's (the lifecycle removes the container)."""

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        return []  # nothing is created at any provider, so nothing can be orphaned there

    def _instance(self, target_text: str, offer: Offer | None = None) -> Instance:
        from gpuctl.models.instance import Instance

        target = parse_target(target_text)
        return Instance(provider=self.name, id=str(target), name=str(target), status="running",
                        ssh_host=target.host, ssh_port=target.port, ssh_user=target.user,
                        gpu=offer.gpu if offer else None, gpu_count=offer.gpu_count if offer else None,
                        price_per_hour=offer.price_per_hour if offer else None)
