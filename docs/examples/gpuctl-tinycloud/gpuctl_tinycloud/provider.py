"""The Tiny Cloud provider: GPU machines gpuctl reaches over SSH (gpuctl runs the engine there)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from gpuctl.catalog import gpu_spec, matches
from gpuctl.errors import NotFoundError
from gpuctl.models.instance import Instance, InstanceStatus, LaunchRequest
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.providers.base import Provider, ProviderCheck
from gpuctl.providers.capabilities import Capability
from gpuctl.providers.checks import api_check
from gpuctl_tinycloud.client import API_KEY, API_URL, Machine, TinyCloud

#: Tiny Cloud's machine states in gpuctl's words
STATES: dict[str, InstanceStatus] = {"starting": "pending", "running": "running", "stopping": "stopping"}


class TinyCloudProvider(Provider):
    name = "tinycloud"
    display_name = "Tiny Cloud"
    capabilities = frozenset({Capability.LAUNCH, Capability.LIST_BY_TAG, Capability.SSH_MACHINE})
    config_keys = (API_KEY, API_URL)
    catalog_file = "catalog.yaml"

    def offers(self, query: OfferQuery) -> list[Offer]:
        if query.spot:
            return []  # Tiny Cloud has no spot market
        gpu_ids = self.catalog().gpu_ids  # type: ignore[union-attr]
        now = datetime.now(timezone.utc)
        offers = []
        for kind in TinyCloud(self.timeout).machine_types():
            gpu = gpu_ids.get(kind.gpu)
            if gpu is None:
                continue  # a GPU gpuctl has no name for: skipped rather than guessed
            offers.append(Offer(
                provider=self.name, gpu=gpu, gpu_count=kind.gpus, vram_gb=gpu_spec(gpu).vram_gb, region=kind.zone,
                price_per_hour=kind.usd_per_hour, price_per_gpu_hour=round(kind.usd_per_hour / kind.gpus, 4),
                availability="high" if kind.in_stock else "none", instance_type=kind.name, source="live",
                as_of=now))
        return [offer for offer in offers if matches(offer, query)]

    def launch(self, request: LaunchRequest) -> Instance:
        """Tiny Cloud takes a client token: the same token returns the machine it already made."""
        body = {"type": request.offer.instance_type, "zone": request.offer.region, "name": request.name,
                "ssh_key": request.ssh_public_key, "labels": request.tags, "client_token": request.idempotency_token}
        return self._instance(TinyCloud(self.timeout).create(body))

    def get(self, instance_id: str) -> Instance:
        return self._instance(TinyCloud(self.timeout).machine(instance_id))

    def terminate(self, instance_id: str) -> None:
        with contextlib.suppress(NotFoundError):  # already gone: that is what was asked
            TinyCloud(self.timeout).delete(instance_id)

    def list_by_tag(self, tags: dict[str, str]) -> list[Instance]:
        return [self._instance(machine) for machine in TinyCloud(self.timeout).machines(tags)]

    def doctor_checks(self) -> list[ProviderCheck]:
        def probe() -> str | None:
            api = TinyCloud(self.timeout)
            api.machines({})
            return api.last_date

        return [api_check("GET /v1/machines", probe)]

    def _instance(self, machine: Machine) -> Instance:
        return Instance(
            provider=self.name, id=machine.id, name=machine.name, status=STATES.get(machine.state, "unknown"),
            provider_status=machine.state, region=machine.zone, instance_type=machine.type,
            gpu=self.catalog().gpu_ids.get(machine.gpu),  # type: ignore[union-attr]
            gpu_count=machine.gpus, public_ip=machine.ip, ssh_host=machine.ip, ssh_port=machine.ssh_port,
            ssh_user=machine.ssh_user, price_per_hour=machine.usd_per_hour, tags=machine.labels)
