"""Reading ``nvidia-smi``: its CSV query output, its exit codes, and GPU names in gpuctl's catalog terms."""

from __future__ import annotations

import re

from pydantic import BaseModel

from gpuctl.host.errors import HostCheckError

QUERY_FIELDS = ("index", "name", "memory.total", "memory.used", "utilization.gpu")
QUERY_ARGV = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]

# nvidia-smi(1), RETURN VALUE; 127 is the shell's "command not found"
EXIT_MEANINGS = {
    2: "an invalid argument or flag",
    3: "the operation is not available on this GPU",
    4: "insufficient permissions",
    6: "the query was unsuccessful",
    8: "the GPU's external power cables are not attached",
    9: "the NVIDIA driver is not loaded",
    10: "the kernel detected an interrupt issue with a GPU",
    12: "the NVML library was not found",
    14: "a GPU's infoROM is corrupted",
    15: "a GPU has fallen off the bus",
    127: "nvidia-smi is not installed (no NVIDIA driver)",
    255: "an internal driver error",
}
_UNREADABLE = re.compile(r"^\[?(N/A|Not Supported|Unknown Error|Insufficient Permissions|GPU is lost)\]?$", re.I)
_MEMORY_TOKEN = re.compile(r"^\d+GB$")


class GpuInfo(BaseModel):
    """One GPU as nvidia-smi reports it; None where it printed [N/A] or [Not Supported]."""

    index: int
    name: str
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    utilization_pct: int | None = None


def parse_query_output(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(QUERY_FIELDS):
            raise HostCheckError(f"unexpected nvidia-smi output line: {line.strip()!r}")
        index, name, total, used, utilization = fields
        number = _number(index)
        if number is None or not name:
            raise HostCheckError(f"unexpected nvidia-smi output line: {line.strip()!r}")
        gpus.append(GpuInfo(index=number, name=name, memory_total_mib=_number(total),
                            memory_used_mib=_number(used), utilization_pct=_number(utilization)))
    return gpus


def _number(value: str) -> int | None:
    if _UNREADABLE.match(value):
        return None
    digits = value.split(" ", 1)[0]  # tolerate units ("81559 MiB") if nounits was not honoured
    try:
        return round(float(digits))
    except ValueError:
        raise HostCheckError(f"unexpected value {value!r} in nvidia-smi output") from None


def failure(exit_code: int, output: str, where: str) -> HostCheckError:
    """The error for a failed nvidia-smi run, saying what its exit code means."""
    meaning = EXIT_MEANINGS.get(exit_code, "an unknown error")
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    detail = f": {first}" if first and exit_code != 127 else ""
    return HostCheckError(
        f"nvidia-smi failed on {where} with exit {exit_code} ({meaning}){detail}",
        "the host has no working NVIDIA driver; pick another offer or image",
    )


def canonical_gpu(name: str, memory_mib: int | None) -> str | None:
    """gpuctl's catalog SKU for an nvidia-smi GPU name ('NVIDIA H100 80GB HBM3' -> 'H100-SXM').

    nvidia-smi's names are aliases in the catalog, with or without the vendor word ('NVIDIA',
    'Tesla'). A name the catalog does not list matches a GPU when all of the GPU's name words
    (memory sizes aside) appear in it; among those the one whose memory is closest to what the GPU
    reports wins (V100-32GB vs V100-16GB), then the most specific name. None when nothing matches.
    """
    from gpuctl.catalog import gpu_names, known_gpus
    from gpuctl.errors import UsageError

    words = _words(name)
    for candidate in (name, " ".join(words[1:])):
        try:
            members = gpu_names(candidate) if candidate else []
        except UsageError:
            continue
        if len(members) == 1:
            return members[0]
    present = set(words)
    if memory_mib is None:  # [N/A]: fall back on a size in the name ('A100-SXM4-80GB')
        sizes = [int(w[:-2]) * 1024 for w in present if _MEMORY_TOKEN.match(w)]
        memory_mib = sizes[0] if sizes else None
    best: tuple[int, int, float, str] | None = None
    for spec in known_gpus():
        family = [w for w in _words(spec.name) if not _MEMORY_TOKEN.match(w)]
        if not family or not set(family) <= present:
            continue
        distance = abs(spec.vram_gb - memory_mib / 1024) if memory_mib else 0.0
        candidate_key = (round(distance / 8), -len(family), distance, spec.name)
        if best is None or candidate_key < best:
            best = candidate_key
    return best[3] if best else None


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s\-_/]+", name.upper()) if w]
