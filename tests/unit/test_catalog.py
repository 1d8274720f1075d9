"""The GPU catalog: aliases, the unknown-GPU hint, provider catalogs and their snapshots."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gpuctl.catalog import gpu_spec, known_gpus, matches, provider_catalog, resolve_gpu, snapshot_offers
from gpuctl.errors import ExitCode, UsageError
from gpuctl.models.offer import OfferQuery


@pytest.mark.parametrize(("text", "canonical"), [
    ("l40s", "L40S"), ("L40S", "L40S"), ("l40-s", "L40S"),
    ("a100", "A100-80GB"), ("A100", "A100-80GB"), ("a100-80gb", "A100-80GB"), ("A100_80GB", "A100-80GB"),
    ("a100-40gb", "A100-40GB"), ("a100 40", "A100-40GB"),
    ("h100", "H100-80GB"), ("H100", "H100-80GB"), ("h100-sxm", "H100-80GB"),
    ("4090", "RTX-4090"), ("rtx4090", "RTX-4090"), ("RTX 4090", "RTX-4090"),
    ("t4", "T4"), ("a10g", "A10G"), ("a10", "A10"), ("h200", "H200"),
])
def test_aliases_resolve_case_insensitively(text: str, canonical: str) -> None:
    assert resolve_gpu(text) == canonical


def test_an_unknown_gpu_is_a_usage_error_with_the_closest_names() -> None:
    with pytest.raises(UsageError) as info:
        resolve_gpu("h1000")
    assert info.value.message == "unknown GPU 'h1000'"
    assert info.value.hint == "did you mean H100-80GB, H200, GH200?"
    assert info.value.exit_code == ExitCode.USAGE


def test_a_name_close_to_nothing_lists_every_gpu() -> None:
    with pytest.raises(UsageError) as info:
        resolve_gpu("banana")
    assert info.value.hint == "known GPUs: " + ", ".join(g.name for g in known_gpus())


def test_gpu_spec_takes_aliases() -> None:
    spec = gpu_spec("a100")
    assert (spec.name, spec.vram_gb) == ("A100-80GB", 80)


def test_every_shipped_provider_catalog_loads() -> None:
    for name in ("aws", "lambda", "runpod"):
        catalog = provider_catalog(name)
        assert catalog is not None and catalog.provider == name and catalog.snapshot
    assert provider_catalog("thirdparty") is None


def test_aws_gpu_ids_cover_the_sized_a100_variants() -> None:
    ids = provider_catalog("aws").gpu_ids  # type: ignore[union-attr]
    assert (ids["A100/40"], ids["A100/80"], ids["H100"]) == ("A100-40GB", "A100-80GB", "H100-80GB")


def test_snapshot_offers_are_dated_and_filtered_by_the_query() -> None:
    offers = snapshot_offers("aws", OfferQuery(gpus=["A100-80GB"]))
    assert [(o.instance_type, o.gpu_count, o.vram_gb, o.price_per_hour, o.price_per_gpu_hour, o.source, o.as_of)
            for o in offers] == [
        ("p4de.24xlarge", 8, 80.0, 27.447, 3.4309, "snapshot", datetime(2026, 11, 9, tzinfo=timezone.utc))]
    assert snapshot_offers("thirdparty", OfferQuery()) == []


def test_matches_treats_region_any_as_everywhere() -> None:
    [lambda_h100] = snapshot_offers("lambda", OfferQuery(gpus=["H100-80GB"], gpu_count=1))
    assert lambda_h100.region == "any"
    assert matches(lambda_h100, OfferQuery(regions=["us-south-1"]))
    [aws_l40s] = snapshot_offers("aws", OfferQuery(gpus=["L40S"]))
    assert not matches(aws_l40s, OfferQuery(regions=["eu-west-1"]))
    assert not matches(aws_l40s, OfferQuery(spot=True))
    assert matches(aws_l40s.model_copy(update={"availability": "none"}), OfferQuery(include_unavailable=True))
    assert not matches(aws_l40s.model_copy(update={"availability": "none"}), OfferQuery())
