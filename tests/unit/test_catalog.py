"""The GPU catalog: aliases and the unknown-GPU hint (provider catalogs: tests/providers/test_catalogs.py)."""

from __future__ import annotations

import pytest

from gpuctl.catalog import gpu_spec, known_gpus, resolve_gpu
from gpuctl.errors import ExitCode, UsageError


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
