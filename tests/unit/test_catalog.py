"""The GPU catalog: one canonical GPU per SKU with datasheet figures, families, aliases; how the built-in
providers map their ids to SKUs (loading provider catalogs: tests/providers/test_catalogs.py)."""

from __future__ import annotations

import pytest

from gpuctl.catalog import GpuCatalog, gpu_catalog, gpu_names, gpu_spec, known_gpus, resolve_gpu, resolve_gpus
from gpuctl.errors import ExitCode, UsageError
from gpuctl.host.nvidia import canonical_gpu
from gpuctl.models.offer import OfferQuery
from gpuctl.providers.aws.provider import AWSProvider
from gpuctl.providers.catalog import snapshot_offers
from gpuctl.providers.lambda_cloud.provider import LambdaProvider
from gpuctl.providers.runpod.provider import RunPodProvider

H100S = ["H100-SXM", "H100-PCIE", "H100-NVL"]
A100S = ["A100-80GB-SXM", "A100-80GB-PCIE", "A100-40GB-SXM", "A100-40GB-PCIE"]


@pytest.mark.parametrize(("text", "canonical"), [
    ("l40s", "L40S"), ("L40S", "L40S"), ("l40-s", "L40S"),
    ("h100-sxm", "H100-SXM"), ("H100_SXM5", "H100-SXM"), ("h100 pcie", "H100-PCIE"), ("h100-nvl", "H100-NVL"),
    ("a100-80gb-sxm", "A100-80GB-SXM"), ("a100-sxm4-80gb", "A100-80GB-SXM"), ("A100 80GB PCIe", "A100-80GB-PCIE"),
    ("a100-40gb-pcie", "A100-40GB-PCIE"), ("h200", "H200"), ("h200-nvl", "H200-NVL"),
    ("4090", "RTX-4090"), ("rtx4090", "RTX-4090"), ("RTX 4090", "RTX-4090"),
    ("t4", "T4"), ("a10g", "A10G"), ("a10", "A10"), ("gh200", "GH200"), ("v100-32gb", "V100-32GB"),
    ("rtx-pro-6000-maxq", "RTX-PRO-6000-MAXQ"), ("RTX PRO Server 6000", "RTX-PRO-6000-SERVER"),
])
def test_a_variant_alias_names_exactly_one_gpu(text: str, canonical: str) -> None:
    assert resolve_gpu(text) == canonical
    assert gpu_names(text) == [canonical]


@pytest.mark.parametrize(("text", "family", "members"), [
    ("h100", "H100", H100S),
    ("H100", "H100", H100S),
    ("a100", "A100", A100S),
    ("a100-80gb", "A100-80GB", ["A100-80GB-SXM", "A100-80GB-PCIE"]),
    ("A100_40GB", "A100-40GB", ["A100-40GB-SXM", "A100-40GB-PCIE"]),
    ("h100-80gb", "H100-80GB", ["H100-SXM", "H100-PCIE"]),  # the name before SKUs were split
    ("v100", "V100", ["V100-16GB-SXM", "V100-16GB-PCIE", "V100-32GB"]),
    ("rtx pro 6000", "RTX-PRO-6000", ["RTX-PRO-6000-SERVER", "RTX-PRO-6000-WS", "RTX-PRO-6000-MAXQ"]),
])
def test_a_family_alias_names_every_variant(text: str, family: str, members: list[str]) -> None:
    assert resolve_gpu(text) == family
    assert gpu_names(text) == members


def test_resolve_gpus_expands_families_once_each_in_the_order_given() -> None:
    assert resolve_gpus(["l40s", "h100", "h100-sxm", "a100-40gb"]) == [
        "L40S", *H100S, "A100-40GB-SXM", "A100-40GB-PCIE"]


def test_a_family_has_no_single_spec() -> None:
    with pytest.raises(UsageError) as info:
        gpu_spec("h100")
    assert info.value.message == "'h100' names 3 GPUs (H100-SXM, H100-PCIE, H100-NVL)"
    assert info.value.exit_code == ExitCode.USAGE


def test_an_unknown_gpu_is_a_usage_error_with_the_closest_names() -> None:
    with pytest.raises(UsageError) as info:
        resolve_gpu("h1000")
    assert info.value.message == "unknown GPU 'h1000'"
    assert info.value.hint == "did you mean H100, H100-80GB, V100?"
    assert info.value.exit_code == ExitCode.USAGE


def test_a_name_close_to_nothing_lists_every_gpu() -> None:
    with pytest.raises(UsageError) as info:
        resolve_gpu("banana")
    assert info.value.hint == "known GPUs: " + ", ".join(g.name for g in known_gpus())


def test_gpu_spec_carries_the_datasheet_figures() -> None:
    spec = gpu_spec("h100-sxm")
    assert (spec.name, spec.vram_gb, spec.memory_bandwidth_gbps, spec.bf16_tflops, spec.fp8_tflops,
            spec.interconnect, spec.interconnect_gbps, spec.host_arch) == (
        "H100-SXM", 80, 3350, 989.5, 1979, "nvlink", 900, "x86_64")
    pcie = gpu_spec("h100-pcie")
    assert (pcie.memory_bandwidth_gbps, pcie.interconnect) == (2000, "pcie")
    assert gpu_spec("h100-nvl").vram_gb == 94


def test_every_gpu_has_sourced_plausible_figures() -> None:
    for spec in known_gpus():
        assert "http" in spec.source or "whitepaper" in spec.source, spec.name
        assert 6 <= spec.vram_gb <= 300 and 200 <= spec.memory_bandwidth_gbps <= 9000, spec.name
        # dense FP8 runs at twice dense BF16 on every GPU that has it (L40S: 733 vs 362.05, as printed)
        assert spec.fp8_tflops is None or spec.fp8_tflops == pytest.approx(2 * spec.bf16_tflops, rel=0.02), spec.name
        assert spec.interconnect_gbps >= 32, spec.name


def test_fp8_only_where_the_gpu_has_it() -> None:
    no_fp8 = {g.name for g in known_gpus() if g.fp8_tflops is None}
    assert {"T4", "A10", "A10G", "A40", "RTX-A6000", "RTX-3090", *A100S, "V100-32GB"} <= no_fp8
    assert not no_fp8 & {"L4", "L40S", "RTX-4090", "RTX-6000-ADA", *H100S, "H200", "B200", "MI300X"}


def test_arm64_hosts_are_marked() -> None:
    assert {g.name for g in known_gpus() if g.host_arch == "arm64"} == {"GH200", "T4G"}


def test_an_alias_naming_two_gpus_is_refused() -> None:
    data = {"gpus": [
        {"name": "X1", "vram_gb": 1, "memory_bandwidth_gbps": 1, "bf16_tflops": 1, "fp8_tflops": None,
         "interconnect": "pcie", "interconnect_gbps": 1, "aliases": ["x"], "source": "a datasheet somewhere"},
        {"name": "X2", "vram_gb": 1, "memory_bandwidth_gbps": 1, "bf16_tflops": 1, "fp8_tflops": None,
         "interconnect": "pcie", "interconnect_gbps": 1, "aliases": ["X"], "source": "a datasheet somewhere"},
    ]}
    with pytest.raises(ValueError, match="'X' names both X1 and X2"):
        GpuCatalog.model_validate(data)


def test_a_family_of_unknown_gpus_is_refused() -> None:
    data = gpu_catalog().model_dump()
    data["families"].append({"name": "Z", "members": ["Z100"], "aliases": []})
    with pytest.raises(ValueError, match="families name unknown GPU"):
        GpuCatalog.model_validate(data)


def test_runpod_maps_each_h100_and_a100_form_to_its_own_sku() -> None:
    # recorded RunPod catalog ids (issue 14): the PCIe, SXM and NVL H100s were all one 'H100-80GB'
    ids = RunPodProvider.catalog().gpu_ids  # type: ignore[union-attr]
    assert [ids[i] for i in ("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL",
                             "NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB")] == [
        "H100-PCIE", "H100-SXM", "H100-NVL", "A100-80GB-PCIE", "A100-80GB-SXM"]
    sxm_only = {runpod_id for runpod_id, gpu in ids.items() if gpu in resolve_gpus(["h100-sxm"])}
    assert sxm_only == {"NVIDIA H100 80GB HBM3"}


def test_runpod_ids_once_dropped_are_mapped() -> None:
    ids = RunPodProvider.catalog().gpu_ids  # type: ignore[union-attr]
    assert {ids[i] for i in (
        "NVIDIA H200 NVL", "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "NVIDIA RTX 5000 Ada Generation",
        "NVIDIA RTX 4000 Ada Generation", "NVIDIA RTX A4500", "NVIDIA RTX A4000", "Tesla V100-SXM2-32GB")} == {
        "H200-NVL", "RTX-PRO-6000-SERVER", "RTX-PRO-6000-WS", "RTX-PRO-6000-MAXQ", "RTX-5000-ADA",
        "RTX-4000-ADA", "RTX-A4500", "RTX-A4000", "V100-32GB"}


def test_runpod_ids_and_nvidia_smi_agree_on_the_sku() -> None:
    # RunPod's ids are nvidia-smi's names: a pod's host check must find the GPU the offer named
    for runpod_id, gpu in RunPodProvider.catalog().gpu_ids.items():  # type: ignore[union-attr]
        assert canonical_gpu(runpod_id, None) == gpu, runpod_id


def test_lambda_offers_b200_in_every_size() -> None:
    types = LambdaProvider.catalog().instance_types  # type: ignore[union-attr]
    assert sorted(t.gpu_count for t in types.values() if t.gpu == "B200") == [1, 2, 4, 8]
    assert (types["gpu_1x_h100_pcie"].gpu, types["gpu_1x_h100_sxm5"].gpu) == ("H100-PCIE", "H100-SXM")
    assert (types["gpu_1x_a100"].gpu, types["gpu_8x_a100"].gpu) == ("A100-40GB-PCIE", "A100-40GB-SXM")


def test_aws_gpu_ids_cover_the_sized_variants() -> None:
    ids = AWSProvider.catalog().gpu_ids  # type: ignore[union-attr]
    assert (ids["A100/40"], ids["A100/80"], ids["H100"], ids["V100/32"], ids["T4g"]) == (
        "A100-40GB-SXM", "A100-80GB-SXM", "H100-SXM", "V100-32GB", "T4G")


def test_a_family_query_finds_every_variant_and_the_table_shows_the_variant() -> None:
    found = snapshot_offers(RunPodProvider.catalog(), OfferQuery(gpus=resolve_gpus(["a100"])))
    assert {o.gpu for o in found} == {"A100-80GB-SXM"}
    assert snapshot_offers(RunPodProvider.catalog(), OfferQuery(gpus=resolve_gpus(["a100-80gb-pcie"]))) == []
