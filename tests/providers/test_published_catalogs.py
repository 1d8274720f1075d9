"""Every GPU a provider publishes maps to a canonical GPU or is left out on purpose, with the reason, in the
provider's catalog (never silently dropped): checked against copies of the providers' own lists kept in
tests/providers/published/ (each file says where and when it was copied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.catalog import gpu_spec
from gpuctl.providers.aws.mapping import GpuInstanceType, instance_type_gpus
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.catalog import ProviderCatalog
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.providers.skips import left_out

PUBLISHED = Path(__file__).parent / "published"


def catalog_of(provider: type) -> ProviderCatalog:
    catalog = provider.catalog()
    assert catalog is not None
    return catalog


def rows(name: str) -> list[list[str]]:
    lines = (PUBLISHED / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


def test_every_published_runpod_gpu_id_is_mapped_or_left_out_with_a_reason() -> None:
    catalog = catalog_of(RunPodProvider)
    published = rows("runpod_gpu_types.tsv")
    assert len(published) == 45  # the table of 2026-02-12
    unaccounted = [gpu_id for gpu_id, _name, _memory in published
                   if gpu_id not in catalog.gpu_ids and gpu_id not in catalog.unsupported]
    assert unaccounted == []
    assert all(len(why) > 10 for why in catalog.unsupported.values())


@pytest.mark.parametrize(("gpu_id", "memory"), [(r[0], int(r[2])) for r in rows("runpod_gpu_types.tsv")])
def test_runpod_mappings_agree_with_the_published_memory(gpu_id: str, memory: int) -> None:
    canonical = catalog_of(RunPodProvider).gpu_ids.get(gpu_id)
    if canonical is not None:  # H200 NVL: RunPod lists 143 GB, NVIDIA markets 141 GB
        assert abs(memory - gpu_spec(canonical).vram_gb) / memory < 0.05, (gpu_id, canonical)


def test_runpod_variants_stay_apart() -> None:
    ids = catalog_of(RunPodProvider).gpu_ids
    assert (ids["NVIDIA H100 PCIe"], ids["NVIDIA H100 80GB HBM3"], ids["NVIDIA H100 NVL"]) == (
        "H100-PCIE", "H100-SXM", "H100-NVL")
    assert (ids["NVIDIA A100 80GB PCIe"], ids["NVIDIA A100-SXM4-80GB"]) == ("A100-80GB-PCIE", "A100-80GB-SXM")


def test_every_published_lambda_instance_type_is_mapped_or_left_out_with_a_reason() -> None:
    catalog = catalog_of(LambdaProvider)
    unaccounted = [name for name, _description, _source in rows("lambda_instance_types.tsv")
                   if name not in catalog.instance_types and name not in catalog.unsupported]
    assert unaccounted == []


@pytest.mark.parametrize(("name", "description"), [(r[0], r[1]) for r in rows("lambda_instance_types.tsv")])
def test_lambda_mappings_agree_with_the_published_description(name: str, description: str) -> None:
    mapped = catalog_of(LambdaProvider).instance_types.get(name)
    if mapped is None:
        return
    count, rest = description.split("x ", 1)
    assert int(count) == mapped.gpu_count
    memory = float(rest.split("(")[1].split(" GB")[0])
    assert memory == gpu_spec(mapped.gpu).vram_gb, (name, mapped.gpu)
    form = rest.split("GB")[1]  # " PCIe)", " SXM4)", ")": the form factor, when Lambda names one
    if "SXM" in form:
        assert gpu_spec(mapped.gpu).interconnect == "nvlink", (name, mapped.gpu)
    if "PCIe" in form and mapped.gpu != "A10":  # the A10 comes in PCIe only, and its name says nothing of it
        assert mapped.gpu.endswith("-PCIE"), (name, mapped.gpu)


def aws_types() -> list[dict]:
    return json.loads((PUBLISHED / "aws_gpu_instance_types.json").read_text(encoding="utf-8"))["instance_types"]


def test_every_published_aws_gpu_instance_type_is_offered_or_skipped_on_purpose() -> None:
    catalog = catalog_of(AWSProvider)
    outcomes = {t["InstanceType"]: instance_type_gpus(
        {**t, "ProcessorInfo": {"SupportedArchitectures": t["SupportedArchitectures"]}}, catalog) for t in aws_types()}
    assert len(outcomes) == 83  # every G and P type of botocore 1.44.18
    unexplained = {name: why for name, why in outcomes.items() if isinstance(why, str)
                   and not why.startswith((left_out(""), "fractional GPU"))}
    assert unexplained == {}
    skipped = {name for name, why in outcomes.items() if isinstance(why, str)}
    assert {name.split(".")[0] for name in skipped} == {"g2", "g3", "g3s", "g4ad", "g6f", "gr6f", "p2", "p6e-gb200"}


def test_aws_offers_whole_gpus_with_their_architecture() -> None:
    catalog = catalog_of(AWSProvider)
    by_name = {t["InstanceType"]: instance_type_gpus(
        {**t, "ProcessorInfo": {"SupportedArchitectures": t["SupportedArchitectures"]}}, catalog) for t in aws_types()}
    assert by_name["p4d.24xlarge"] == GpuInstanceType("p4d.24xlarge", "A100-40GB-SXM", 8, None, None)
    assert by_name["p4de.24xlarge"].gpu == "A100-80GB-SXM"  # type: ignore[union-attr]
    assert by_name["p3dn.24xlarge"].gpu == "V100-32GB"  # type: ignore[union-attr]
    assert by_name["g7e.48xlarge"].gpu == "RTX-PRO-6000-SERVER"  # type: ignore[union-attr]
    assert by_name["g5g.xlarge"].arch == "arm64"  # type: ignore[union-attr]
    assert by_name["g6f.large"].startswith("fractional GPU (Count 0, GpuPartitionSize 0.125)")  # type: ignore[union-attr]
