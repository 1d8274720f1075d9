"""Cold starts remembered on this machine, and the forecast ``up --dry-run`` makes from them.

Every ``up`` that gets to ready appends its phases to ``cache_dir()/cold-starts.jsonl`` (provider,
region, GPU, engine image, model size, and each phase's seconds and bytes). A forecast for an offer
takes the median of past ups on the same provider (the same GPU first where the engine's load time
depends on it) and scales by size where a phase moves bytes: image pull and weights by the
throughput seen, engine load by seconds per GB of weights. A phase with no history rests on a
stated assumption instead; each estimate says which.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from gpuctl.models.deployment import Deployment
from gpuctl.models.phases import ColdStartPrediction, Phase, PhaseEstimate, PhaseName
from gpuctl.paths import cache_dir
from gpuctl.providers.capabilities import Capability

HISTORY_FILE = "cold-starts.jsonl"
#: the most recent ups a forecast reads
MAX_HISTORY = 500
GB = 1e9

# what a forecast assumes where there is no history (each figure is named in the estimate's basis)
ASSUMED_PROVISION_S = {Capability.SSH_MACHINE: 150.0, Capability.ENGINE_CONTAINER: 45.0}
ASSUMED_HOST_S = {Capability.SSH_MACHINE: 20.0, Capability.USER_HOST: 2.0}
ASSUMED_IMAGE_BYTES = 10 * GB
ASSUMED_PULL_BPS = 100e6
ASSUMED_DOWNLOAD_BPS = 100e6
ASSUMED_ENGINE_FIXED_S = 30.0
ASSUMED_LOAD_BPS = 1 * GB
ASSUMED_FIRST_TOKEN_S = 1.0


class ColdStartRecord(BaseModel):
    """One ``up`` that reached ready."""

    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    provider: str
    region: str | None = None
    gpu: str | None = None
    gpu_count: int | None = None
    engine: str | None = None
    image: str | None = None
    weights_bytes: int | None = Field(default=None, description="the model's files, in all")
    phases: list[Phase]

    def phase(self, name: PhaseName) -> Phase | None:
        return next((p for p in self.phases if p.name == name and p.seconds is not None), None)


def history_path() -> Path:
    return cache_dir() / HISTORY_FILE


def remember(deployment: Deployment, *, weights_bytes: int | None) -> None:
    """Append ``deployment``'s cold start to the history (nothing when it has no finished phase)."""
    from filelock import FileLock

    if not any(p.ended_at is not None for p in deployment.phases):
        return
    spec = deployment.engine_spec
    entry = ColdStartRecord(provider=deployment.provider, region=deployment.region, gpu=deployment.gpu,
                            gpu_count=deployment.gpu_count, engine=deployment.engine,
                            image=spec.image if spec is not None else None, weights_bytes=weights_bytes,
                            phases=[p for p in deployment.phases if p.ended_at is not None])
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), path.open("a", encoding="utf-8") as out:
        out.write(entry.model_dump_json() + "\n")


def history() -> list[ColdStartRecord]:
    """The remembered cold starts, oldest first (the last MAX_HISTORY; unreadable lines skipped)."""
    try:
        lines = history_path().read_text(encoding="utf-8").splitlines()[-MAX_HISTORY:]
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(ColdStartRecord.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            continue
    return records


def predict(*, provider: str, kind: Capability, gpu: str, engine: str, image: str, weights_bytes: float,
            weights_basis: str, price_per_hour: float,
            past: Sequence[ColdStartRecord] | None = None) -> ColdStartPrediction:
    """The cold start expected on ``provider`` (machine kind ``kind``) for a model of ``weights_bytes``."""
    past = history() if past is None else past
    mine = [r for r in past if r.provider == provider]
    estimates: list[PhaseEstimate] = []
    image_bytes, image_basis = _image_size(image, past)
    pull = _rate(mine, "image", lambda r: r.phase("image"), lambda p, r: p.bytes if p.source == "registry" else None)
    pull_bps, pull_basis = pull or (ASSUMED_PULL_BPS, f"assumed {ASSUMED_PULL_BPS / 1e6:.0f} MB/s")
    if kind != Capability.USER_HOST:
        seconds = _median(mine, "provision")
        if seconds is not None:
            estimates.append(PhaseEstimate(name="provision", seconds=seconds[0], basis=_history(seconds[1], provider)))
        elif kind == Capability.ENGINE_CONTAINER:
            fixed = ASSUMED_PROVISION_S[kind]
            estimates.append(PhaseEstimate(
                name="provision", seconds=round(fixed + image_bytes / pull_bps, 1),
                basis=f"assumed: {fixed:.0f}s to place the pod, plus its own pull of {image} "
                      f"({image_basis} at {pull_basis})"))
        else:
            estimates.append(PhaseEstimate(name="provision", seconds=ASSUMED_PROVISION_S[Capability.SSH_MACHINE],
                                           basis="assumed: a VM boots in about 2.5 minutes"))
    if kind != Capability.ENGINE_CONTAINER:
        seconds = _median(mine, "host")
        estimates.append(PhaseEstimate(name="host", seconds=seconds[0], basis=_history(seconds[1], provider))
                         if seconds is not None else
                         PhaseEstimate(name="host", seconds=ASSUMED_HOST_S[kind],
                                       basis="assumed: SSH answers and the GPUs are checked"))
        estimates.append(PhaseEstimate(name="image", seconds=round(image_bytes / pull_bps, 1),
                                       basis=f"{image_basis} at {pull_basis}"))
    download = _rate(mine, "weights", lambda r: r.phase("weights"),
                     lambda p, r: p.bytes if p.source in ("hub", "mirror", "provider") and p.bytes else None)
    download_bps, download_basis = download or (ASSUMED_DOWNLOAD_BPS,
                                                f"assumed {ASSUMED_DOWNLOAD_BPS / 1e6:.0f} MB/s from the hub")
    estimates.append(PhaseEstimate(name="weights", seconds=round(weights_bytes / download_bps, 1),
                                   basis=f"{weights_bytes / GB:.1f} GB ({weights_basis}) at {download_basis}; "
                                         "less when the weights cache holds them"))
    estimates.append(_engine_estimate(past, provider, gpu, engine, weights_bytes))
    seconds = _median(mine, "first_token")
    estimates.append(PhaseEstimate(name="first_token", seconds=seconds[0], basis=_history(seconds[1], provider))
                     if seconds is not None else
                     PhaseEstimate(name="first_token", seconds=ASSUMED_FIRST_TOKEN_S,
                                   basis="assumed: one short completion"))
    total = round(sum(e.seconds for e in estimates), 1)
    return ColdStartPrediction(phases=estimates, seconds=total, cost_usd=round(price_per_hour * total / 3600, 4),
                               history_ups=len(mine))


def _engine_estimate(past: Sequence[ColdStartRecord], provider: str, gpu: str, engine: str,
                     weights_bytes: float) -> PhaseEstimate:
    """Seconds per GB of weights seen loading on the same GPU and engine (this provider first), scaled."""
    for scope, label in (([r for r in past if (r.provider, r.gpu, r.engine) == (provider, gpu, engine)],
                          f"{engine} on {gpu} at {provider}"),
                         ([r for r in past if (r.gpu, r.engine) == (gpu, engine)], f"{engine} on {gpu}")):
        per_gb = [p.seconds / (r.weights_bytes / GB) for r in scope
                  if (p := r.phase("engine")) is not None and p.seconds is not None and r.weights_bytes]
        if per_gb:
            seconds = statistics.median(per_gb) * weights_bytes / GB
            return PhaseEstimate(name="engine", seconds=round(seconds, 1),
                                 basis=f"history: {statistics.median(per_gb):.1f}s per GB of weights, median of "
                                       f"{len(per_gb)} up(s) of {label}")
    seconds = ASSUMED_ENGINE_FIXED_S + weights_bytes / ASSUMED_LOAD_BPS
    return PhaseEstimate(name="engine", seconds=round(seconds, 1),
                         basis=f"assumed: {ASSUMED_ENGINE_FIXED_S:.0f}s start-up plus weights read at "
                               f"{ASSUMED_LOAD_BPS / GB:.0f} GB/s")


def _image_size(image: str, past: Sequence[ColdStartRecord]) -> tuple[float, str]:
    sizes = [p.bytes for r in past if r.image == image and (p := r.phase("image")) is not None
             and p.source == "registry" and p.bytes]
    if sizes:
        return float(max(sizes)), f"{max(sizes) / GB:.1f} GB (the pull of {image} seen before)"
    return ASSUMED_IMAGE_BYTES, f"assumed {ASSUMED_IMAGE_BYTES / GB:.0f} GB (CUDA engine images are about that, " \
                                "compressed)"


def _median(records: Sequence[ColdStartRecord], name: PhaseName) -> tuple[float, int] | None:
    values = [p.seconds for r in records if (p := r.phase(name)) is not None and p.seconds is not None]
    return (round(statistics.median(values), 1), len(values)) if values else None


def _rate(records: Sequence[ColdStartRecord], name: PhaseName, pick: Callable[[ColdStartRecord], Phase | None],
          size: Callable[[Phase, ColdStartRecord], int | None]) -> tuple[float, str] | None:
    """Median bytes per second of ``name`` phases that moved bytes, with its basis."""
    rates = []
    for record in records:
        phase = pick(record)
        moved = size(phase, record) if phase is not None else None
        if phase is not None and moved and phase.seconds:
            rates.append(moved / phase.seconds)
    if not rates:
        return None
    rate = statistics.median(rates)
    return rate, f"{rate / 1e6:.0f} MB/s (history: median of {len(rates)} {name} phase(s))"


def _history(count: int, provider: str) -> str:
    return f"history: median of {count} up(s) on {provider}"
