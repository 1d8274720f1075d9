"""Throwaway providers and offers for the pricing and ``gpuctl prices`` tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from gpuctl.catalog import gpu_spec, matches
from gpuctl.credentials import CredentialStatus
from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.base import Provider
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.provider import RunPodProvider

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def offer(provider: str, gpu: str, count: int, price: float, **extra: Any) -> Offer:
    fields: dict[str, Any] = dict(
        provider=provider, gpu=gpu, gpu_count=count, vram_gb=gpu_spec(gpu).vram_gb, region="r1",
        price_per_hour=price, price_per_gpu_hour=round(price / count, 4), instance_type=f"{gpu}x{count}",
        source="live", as_of=NOW,
    )
    fields.update(extra)
    return Offer(**fields)


#: the built-in whose catalog (and so snapshot) a fake of the same name carries
BUILT_INS = {"aws": AWSProvider, "lambda": LambdaProvider, "runpod": RunPodProvider}


def fake_provider(name: str, offers: Sequence[Offer] = (), *, error: Exception | None = None,
                  delay: float = 0.0, creds: bool = True, own_process: bool = False) -> type[Provider]:
    """A provider class answering ``offers`` (after ``delay``) or raising ``error``; counts its calls. Named as a
    built-in, it ships that built-in's catalog."""

    class Fake(Provider):
        display_name = name.title()
        calls: list[OfferQuery] = []

        def credentials(self) -> CredentialStatus:
            return CredentialStatus(key=name, present=creds, source="test" if creds else None,
                                    hint=None if creds else f"export {name.upper()}_KEY=...")

        def offers(self, query: OfferQuery) -> list[Offer]:
            type(self).calls.append(query)
            time.sleep(delay)
            if error is not None:
                raise error
            return [o for o in offers if matches(o, query)]

    Fake.name = name
    Fake.own_process = own_process
    if name in BUILT_INS:
        Fake.catalog = BUILT_INS[name].catalog  # type: ignore[method-assign]
    return Fake


def registry(*classes: type[Provider]) -> ProviderRegistry:
    """A registry holding exactly ``classes``, as ``ProviderRegistry.discover`` would build it."""
    return ProviderRegistry(classes={c.name: c for c in classes}, packages={c.name: (None, None) for c in classes})


def snapshot_rows(provider: str) -> list[tuple]:
    """The snapshot rows of a built-in's catalog file, read without gpuctl's catalog code."""
    package = {"lambda": "lambda_cloud"}.get(provider, provider)
    data = yaml.safe_load((REPO / "gpuctl" / "providers" / package / "catalog.yaml").read_text())
    return sorted((provider, r["instance_type"], r["gpu"], r["gpu_count"], r["region"], r.get("tier"),
                   r["price_per_hour"], str(r["as_of"])) for r in data["snapshot"])


def as_rows(offers: Sequence[Offer]) -> list[tuple]:
    return sorted((o.provider, o.instance_type, o.gpu, o.gpu_count, o.region, o.tier, o.price_per_hour,
                   str(o.as_of.date())) for o in offers)
