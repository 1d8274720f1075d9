"""Provider catalogs: shipped as each provider's own package data, canonical GPUs only, dated snapshots."""

from __future__ import annotations

import sys
import textwrap
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpuctl.catalog import matches
from gpuctl.models.offer import OfferQuery
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.base import Provider
from gpuctl.providers.catalog import CatalogError, load_catalog, snapshot_offers
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.providers.ssh import HostProvider


@pytest.mark.parametrize("provider", [AWSProvider, LambdaProvider, RunPodProvider])
def test_every_built_in_catalog_is_package_data_of_its_provider(provider: type[Provider]) -> None:
    catalog = provider.catalog()
    assert catalog is not None and catalog.provider == provider.name and catalog.snapshot
    assert (Path(sys.modules[provider.__module__].__file__).parent / "catalog.yaml").is_file()  # type: ignore[arg-type]


def test_a_provider_without_a_catalog_has_none() -> None:
    assert HostProvider.catalog() is None


def test_snapshot_offers_are_dated_and_filtered_by_the_query() -> None:
    offers = snapshot_offers(AWSProvider.catalog(), OfferQuery(gpus=["A100-80GB-SXM"]))  # type: ignore[arg-type]
    assert [(o.instance_type, o.gpu_count, o.vram_gb, o.price_per_hour, o.price_per_gpu_hour, o.source, o.as_of)
            for o in offers] == [
        ("p4de.24xlarge", 8, 80.0, 27.447, 3.4309, "snapshot", datetime(2026, 11, 9, tzinfo=timezone.utc))]


def test_matches_treats_region_any_as_everywhere() -> None:
    [lambda_h100] = snapshot_offers(LambdaProvider.catalog(),  # type: ignore[arg-type]
                                    OfferQuery(gpus=["H100-SXM"], gpu_count=1))
    assert lambda_h100.region == "any"
    assert matches(lambda_h100, OfferQuery(regions=["us-south-1"]))
    [aws_l40s] = snapshot_offers(AWSProvider.catalog(), OfferQuery(gpus=["L40S"]))  # type: ignore[arg-type]
    assert not matches(aws_l40s, OfferQuery(regions=["eu-west-1"]))
    assert not matches(aws_l40s, OfferQuery(spot=True))
    assert matches(aws_l40s.model_copy(update={"availability": "none"}), OfferQuery(include_unavailable=True))
    assert not matches(aws_l40s.model_copy(update={"availability": "none"}), OfferQuery())


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable throwaway package to put catalogs in (a new name per test: catalogs are read once)."""
    root = tmp_path / "pkgs" / f"catalog_pkg_{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(root.parent))
    return root


def write(package: Path, name: str, text: str) -> str:
    (package / name).write_text(textwrap.dedent(text))
    return name


def test_a_plugin_may_not_add_gpus_its_catalog_is_refused_naming_the_gpu(package: Path) -> None:
    name = write(package, "bad-gpu.yaml", """\
        provider: acme
        gpu_ids: {"ACME Z9": Z9-1TB}
    """)
    with pytest.raises(CatalogError, match=rf"{package.name}/bad-gpu.yaml: .*unknown canonical GPU\(s\) Z9-1TB"):
        load_catalog(package.name, name, "acme")


@pytest.mark.parametrize(("text", "problem"), [
    ("provider: other\n", "names provider 'other', not 'acme'"),
    ("provider: acme\nsnapshot: [{instance_type: x}]\n", "field 'snapshot.0.gpu': Field required"),
    ("provider: acme\ngpu_ids: [\n", "not valid YAML"),
])
def test_an_invalid_catalog_is_a_catalog_error_naming_file_and_field(package: Path, text: str, problem: str) -> None:
    name = write(package, "cat.yaml", text)
    with pytest.raises(CatalogError, match=problem):
        load_catalog(package.name, name, "acme")


def test_a_missing_catalog_file_is_a_catalog_error(package: Path) -> None:
    with pytest.raises(CatalogError, match=f"{package.name}/none.yaml: cannot be read"):
        load_catalog(package.name, "none.yaml", "acme")
