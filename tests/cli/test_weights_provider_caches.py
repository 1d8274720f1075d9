"""``gpuctl weights ls|rm --to`` over the provider-cache interface, with an in-memory provider; the ledger."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import ClassVar

import pytest
from click.testing import Result

from gpuctl.models.offer import Offer, OfferQuery
from gpuctl.models.weights_cache import WeightsCache, cache_name
from gpuctl.plugins import ProviderRegistry
from gpuctl.providers.base import Provider
from gpuctl.providers.capabilities import Capability
from gpuctl.weights.ledger import filled_models, record_filled
from gpuctl.weights.models import CacheReport
from gpuctl.weights.provider_caches import parse_to

Gpuctl = Callable[..., Result]


class ShelfCloud(Provider):
    """A provider whose caches live in a class attribute (one list for the whole test)."""

    name = "shelf"
    display_name = "Shelf"
    capabilities = frozenset({Capability.WEIGHTS_CACHE})
    caches: ClassVar[list[WeightsCache]] = []
    deleted: ClassVar[list[str]] = []

    def offers(self, query: OfferQuery) -> list[Offer]:
        return []

    def weights_caches(self) -> list[WeightsCache]:
        return list(self.caches)

    def delete_weights_cache(self, cache: WeightsCache) -> None:
        self.deleted.append(cache.id)
        type(self).caches = [c for c in self.caches if c.id != cache.id]


class Bare(Provider):
    name = "bare"
    display_name = "Bare"

    def offers(self, query: OfferQuery) -> list[Offer]:
        return []


def shelf_cache(region: str, ident: str) -> WeightsCache:
    return WeightsCache(provider="shelf", id=ident, name=cache_name(region), region=region, kind="network-volume",
                        size_gb=50, used_bytes=1_600_000, in_use=False,
                        created_at=datetime(2026, 11, 1, tzinfo=timezone.utc))


def report(repo: str, commit: str) -> CacheReport:
    return CacheReport(repo=repo, revision="main", commit=commit, format="safetensors", where="pod", cache_dir="/c",
                       files=9, total_bytes=1_581_943, downloaded_bytes=1_581_943, reused_bytes=0,
                       manifest_source="hub", seconds=1.0)


@pytest.fixture
def shelf(monkeypatch: pytest.MonkeyPatch) -> type[ShelfCloud]:
    ShelfCloud.caches = [shelf_cache("EU-RO-1", "vol-eu"), shelf_cache("US-KS-2", "vol-us")]
    ShelfCloud.deleted = []
    registry = ProviderRegistry(classes={"shelf": ShelfCloud, "bare": Bare})
    monkeypatch.setattr(ProviderRegistry, "discover", classmethod(lambda cls, eps=None: registry))
    return ShelfCloud


def test_ls_lists_every_providers_caches_with_what_was_filled_from_here(gpuctl: Gpuctl, shelf) -> None:
    record_filled(shelf.caches[1], report("test-org/tiny-llama", "7ba81da4" + "0" * 32))
    listed = gpuctl("weights", "ls", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["provider"], r["region"], r["name"], r["id"]) for r in rows] == [
        ("shelf", "EU-RO-1", "gpuctl-hf-cache-EU-RO-1", "vol-eu"),
        ("shelf", "US-KS-2", "gpuctl-hf-cache-US-KS-2", "vol-us")]
    assert rows[0]["models"] == [] and rows[1]["models"][0]["repo"] == "test-org/tiny-llama"
    table = gpuctl("weights", "ls", "--to", "shelf:US-KS-2")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    header, line = lines[0], lines[-1]
    assert len(lines) == 3  # header, rule, one row
    assert header.split()[:4] == ["PROVIDER", "REGION", "NAME", "KIND"]
    assert line.split()[:6] == ["shelf", "US-KS-2", "gpuctl-hf-cache-US-KS-2", "network-volume", "50", "GB"]
    assert line.rstrip().endswith("test-org/tiny-llama@7ba81da4")


def test_rm_to_deletes_the_whole_cache_after_asking_and_forgets_it(gpuctl: Gpuctl, shelf) -> None:
    record_filled(shelf.caches[0], report("test-org/tiny-llama", "a" * 40))
    refused = gpuctl("weights", "rm", "--to", "shelf:EU-RO-1")  # no terminal, no -y
    assert refused.exit_code == 2 and "without a confirmation" in refused.stderr and shelf.deleted == []
    ambiguous = gpuctl("weights", "rm", "--to", "shelf", "-y")
    assert ambiguous.exit_code == 2 and "several regions (EU-RO-1, US-KS-2)" in ambiguous.stderr
    removed = gpuctl("weights", "rm", "--to", "shelf:EU-RO-1", "-y")
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout == "deleted Shelf's weights cache gpuctl-hf-cache-EU-RO-1 (vol-eu) in EU-RO-1\n"
    assert shelf.deleted == ["vol-eu"] and filled_models(shelf_cache("EU-RO-1", "vol-eu")) == []
    missing = gpuctl("weights", "rm", "--to", "shelf:EU-RO-1", "-y")
    assert missing.exit_code == 3 and "Shelf has no gpuctl weights cache in EU-RO-1" in missing.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("rm", "--to", "bare"), "Bare keeps no weights cache (hint: providers with one: shelf"),
    (("rm", "tiny", "--to", "shelf:EU-RO-1"), "a provider's weights cache is deleted whole"),
    (("pull", "tiny"), "no cache named"),
    (("pull", "tiny", "--to", "shelf", "--host", "local"), "--host and --to name two places"),
    (("ls", "--to", "shelf:"), "'shelf:' is not PROVIDER[:REGION]"),
    (("rm", "--to", "nowhere"), "unknown provider 'nowhere'"),
])
def test_refusals_exit_2(gpuctl: Gpuctl, shelf, args: tuple[str, ...], message: str) -> None:
    result = gpuctl("weights", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_ledger_keeps_one_row_per_commit() -> None:
    cache = shelf_cache("EU-RO-1", "vol-eu")
    record_filled(cache, report("org/a", "1" * 40))
    record_filled(cache, report("org/a", "1" * 40))
    record_filled(cache, report("org/a", "2" * 40))
    assert [(m.repo, m.commit[:1]) for m in filled_models(cache)] == [("org/a", "1"), ("org/a", "2")]
    assert filled_models(shelf_cache("EU-RO-1", "other")) == []


def test_parse_to() -> None:
    assert parse_to("runpod:US-KS-2") == ("runpod", "US-KS-2")
    assert parse_to("lambda") == ("lambda", None)
