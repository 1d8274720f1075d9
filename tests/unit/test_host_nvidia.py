"""nvidia-smi output, exit codes, and GPU names mapped onto gpuctl's catalog."""

from __future__ import annotations

import pytest

from gpuctl.errors import ExitCode
from gpuctl.host.errors import HostCheckError
from gpuctl.host.nvidia import QUERY_ARGV, GpuInfo, canonical_gpu, failure, parse_query_output


def test_query_asks_for_csv_without_header_and_units() -> None:
    assert QUERY_ARGV == ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.used,utilization.gpu",
                          "--format=csv,noheader,nounits"]


def test_parses_one_line_per_gpu() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 81559, 0, 0\n1, NVIDIA H100 80GB HBM3, 81559, 1024, 37\n"
    assert parse_query_output(text) == [
        GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", memory_total_mib=81559, memory_used_mib=0, utilization_pct=0),
        GpuInfo(index=1, name="NVIDIA H100 80GB HBM3", memory_total_mib=81559, memory_used_mib=1024,
                utilization_pct=37),
    ]


@pytest.mark.parametrize("unreadable", ["[N/A]", "[Not Supported]", "N/A", "[Unknown Error]",
                                        "[Insufficient Permissions]"])
def test_unreadable_values_become_none(unreadable: str) -> None:
    (gpu,) = parse_query_output(f"0, NVIDIA A10G, 23028, {unreadable}, {unreadable}\n")
    assert (gpu.memory_total_mib, gpu.memory_used_mib, gpu.utilization_pct) == (23028, None, None)


def test_tolerates_units_blank_lines_and_windows_newlines() -> None:
    (gpu,) = parse_query_output("\r\n0, NVIDIA L4, 23034 MiB, 5 MiB, 3 %\r\n\n")
    assert (gpu.name, gpu.memory_total_mib, gpu.memory_used_mib, gpu.utilization_pct) == ("NVIDIA L4", 23034, 5, 3)


@pytest.mark.parametrize("line", ["0, NVIDIA L4, 23034", "x, NVIDIA L4, 1, 2, 3", "0, , 1, 2, 3",
                                  "0, NVIDIA L4, lots, 2, 3"])
def test_malformed_output_is_a_host_check_error(line: str) -> None:
    with pytest.raises(HostCheckError) as caught:
        parse_query_output(line)
    assert caught.value.exit_code == ExitCode.PROVIDER


@pytest.mark.parametrize(
    ("code", "meaning"),
    [(9, "the NVIDIA driver is not loaded"), (12, "the NVML library was not found"), (2, "an invalid argument"),
     (255, "an internal driver error"), (127, "nvidia-smi is not installed"), (42, "an unknown error")],
)
def test_failure_explains_the_exit_code(code: int, meaning: str) -> None:
    output = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\nMore.\n"
    error = failure(code, output, "ubuntu@203.0.113.7:22")
    assert f"exit {code} ({meaning}" in error.message
    assert "ubuntu@203.0.113.7:22" in error.message
    if code != 127:
        assert error.message.endswith(": NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


@pytest.mark.parametrize(
    ("name", "memory_mib", "canonical"),
    [
        ("NVIDIA H100 80GB HBM3", 81559, "H100-SXM"),
        ("NVIDIA H100 PCIe", 81559, "H100-PCIE"),
        ("NVIDIA H100 NVL", 95830, "H100-NVL"),
        ("NVIDIA A100-SXM4-80GB", 81920, "A100-80GB-SXM"),
        ("NVIDIA A100-SXM4-40GB", 40960, "A100-40GB-SXM"),
        ("NVIDIA A100-PCIE-40GB", None, "A100-40GB-PCIE"),
        ("NVIDIA A100 80GB PCIe", None, "A100-80GB-PCIE"),
        ("NVIDIA L40S", 46068, "L40S"),
        ("NVIDIA L40", 46068, "L40"),
        ("NVIDIA A10G", 23028, "A10G"),
        ("NVIDIA A10", 23028, "A10"),
        ("Tesla T4", 15360, "T4"),
        ("Tesla V100-SXM2-16GB", 16384, "V100-16GB-SXM"),
        ("Tesla V100-SXM2-32GB", 32768, "V100-32GB"),
        ("Tesla V100-PCIE-32GB", 32768, "V100-32GB"),  # not listed: the closest memory wins
        ("NVIDIA GeForce RTX 4090", 24564, "RTX-4090"),
        ("NVIDIA RTX A6000", 49140, "RTX-A6000"),
        ("NVIDIA RTX 6000 Ada Generation", 49140, "RTX-6000-ADA"),
        ("NVIDIA RTX 4000 SFF Ada Generation", 20475, "RTX-4000-SFF-ADA"),
        ("NVIDIA H200", 143771, "H200"),
        ("NVIDIA H200 NVL", 143771, "H200-NVL"),
        ("NVIDIA GH200 480GB", 97871, "GH200"),
        ("NVIDIA B200", 183359, "B200"),
        ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", 97887, "RTX-PRO-6000-MAXQ"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", 97887, "RTX-PRO-6000-SERVER"),
        ("NVIDIA Quadro P1000", 4096, None),
    ],
)
def test_canonical_gpu_names(name: str, memory_mib: int | None, canonical: str | None) -> None:
    assert canonical_gpu(name, memory_mib) == canonical
