"""The calibration table (``calibration.yaml``): published measurements and the model's error on each.

``tests/unit/test_perf_calibration.py`` holds the error under the documented limits;
``benchmarks/perf_calibration.py`` refits the engine factors and prints the table.
"""

from __future__ import annotations

import statistics
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.models.recipe import QuantMethod, Recipe
from gpuctl.perf.engines import EngineProfile, PerfEngine
from gpuctl.perf.estimate import Estimate, KvCacheDtype, Workload, estimate

CALIBRATION_FILE = Path(__file__).with_name("calibration.yaml")
Metric = Literal["output_tokens_per_s", "input_tokens_per_s", "ttft_ms", "itl_ms"]

#: The error the model is held to (tests fail above them; docs/cost-per-token.md explains them): the
#: median over every row, and the worst fixed-length row per metric. Rows measured on mixed-length
#: datasets are reported but not held to the worst-row limits: the model assumes fixed lengths.
MEDIAN_ERROR_LIMIT = 0.15
WORST_ERROR_LIMIT: dict[str, float] = {"output_tokens_per_s": 1.25, "input_tokens_per_s": 0.5, "ttft_ms": 0.9,
                                       "itl_ms": 0.25}


class CalibrationRow(BaseModel):
    """One published measurement with its exact conditions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    model: str
    gpu: str
    gpus: int = Field(ge=1)
    quantization: QuantMethod | None = None
    kv_cache: KvCacheDtype = "auto"
    engine: PerfEngine
    version: str
    input: int = Field(ge=1)
    output: int = Field(ge=1)
    concurrency: int | Literal["max"]
    metric: Metric
    value: float = Field(gt=0)
    lengths: Literal["fixed", "variable"] = Field(
        default="fixed", description="variable: a dataset of mixed lengths, input/output are its averages")
    assumed: str | None = None

    @property
    def workload(self) -> Workload:
        return Workload(input_tokens=self.input, output_tokens=self.output, concurrency=self.concurrency)


class CalibrationTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[Recipe]
    sources: dict[str, str]
    rows: list[CalibrationRow]


class RowError(BaseModel):
    """The model's answer on one row, and how far it is from the measurement."""

    row: CalibrationRow
    estimated: float
    error: float = Field(description="(estimated - measured) / measured")


@cache
def calibration_table() -> CalibrationTable:
    """The shipped table, checked: every row names a known source."""
    from gpuctl.yamlio import load_yaml

    table = CalibrationTable.model_validate(load_yaml(CALIBRATION_FILE.read_text(encoding="utf-8")))
    unknown = sorted({r.source for r in table.rows} - set(table.sources))
    if unknown:
        raise ValueError(f"{CALIBRATION_FILE.name}: rows cite unknown sources {', '.join(unknown)}")
    return table


def _recipe(name: str) -> Recipe:
    for recipe in calibration_table().models:
        if recipe.name == name:
            return recipe
    from gpuctl.recipes.book import SUFFIX, load_recipe_file
    from gpuctl.resources import data_dir

    return load_recipe_file(Path(str(data_dir("recipes") / f"{name}{SUFFIX}")), "builtin")


def predicted(row: CalibrationRow, efficiency: EngineProfile | None = None) -> float:
    """The model's value for ``row``'s metric (with ``efficiency`` instead of the engine's shipped profile)."""
    result: Estimate = estimate(_recipe(row.model), row.gpu, row.gpus, engine=row.engine,
                                quantization=row.quantization, kv_cache_dtype=row.kv_cache,
                                workload=row.workload, efficiency=efficiency)
    if row.metric == "input_tokens_per_s":
        return result.output_tokens_per_s * row.input / row.output
    return float(getattr(result, row.metric))


def row_errors(rows: list[CalibrationRow] | None = None,
               profiles: dict[str, EngineProfile] | None = None) -> list[RowError]:
    """The model's error on every row (``profiles`` override the shipped engine profiles)."""
    profiles = profiles or {}
    found = []
    for row in rows if rows is not None else calibration_table().rows:
        value = predicted(row, profiles.get(row.engine))
        found.append(RowError(row=row, estimated=round(value, 2), error=round((value - row.value) / row.value, 4)))
    return found


def median_abs_error(errors: list[RowError]) -> float:
    """The median of |estimated - measured| / measured."""
    return statistics.median(abs(e.error) for e in errors)
