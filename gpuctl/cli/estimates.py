"""The options and columns of performance estimates, shared by ``fit``, ``prices --for``, ``up`` and the sweep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from gpuctl.app import App
from gpuctl.cli.output import Column, warn

if TYPE_CHECKING:
    from gpuctl.models.bench import BenchRecord
    from gpuctl.perf.cost import Slo
    from gpuctl.perf.offers import Serving

F = TypeVar("F", bound=Callable[..., Any])


class ConcurrencyType(click.ParamType):
    """Requests in flight: a positive number, or ``max`` (as many as the KV cache holds)."""

    name = "concurrency"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value == "max":
            return value
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"'{value}' is not a positive number or 'max'", param, ctx)
        return number


class SloType(click.ParamType):
    """``ttft=MS,itl=MS``."""

    name = "slo"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Slo:
        from gpuctl.perf.cost import Slo, parse_slo

        if isinstance(value, Slo):
            return value
        try:
            return parse_slo(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SLO_OPTION = click.option("--slo", type=SloType(), default=None, metavar="ttft=MS,itl=MS",
                          help="Latency targets an estimate must meet (time to first token, inter-token latency).")


def load_options(func: F) -> F:
    """``--input-len``, ``--output-len``, ``--concurrency`` and ``--slo``: the load an estimate is for."""
    from gpuctl.perf.offers import DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS

    for option in reversed((
        click.option("--input-len", type=click.IntRange(min=1), default=DEFAULT_INPUT_TOKENS, show_default=True,
                     metavar="TOKENS", help="Prompt tokens per request, for the estimates."),
        click.option("--output-len", type=click.IntRange(min=1), default=DEFAULT_OUTPUT_TOKENS, show_default=True,
                     metavar="TOKENS", help="Answer tokens per request, for the estimates."),
        click.option("--concurrency", type=ConcurrencyType(), default=None, metavar="C|max",
                     help="Requests in flight for the estimates [default: the most that meet --slo, else max]."),
        SLO_OPTION,
    )):
        func = option(func)
    return func


def serving(app: App, *, engine: str | None, quantization: str | None, input_len: int, output_len: int,
            concurrency: int | Literal["max"] | None, slo: Slo | None) -> Serving:
    """What to estimate, from the options; warns about an engine the user should know about (TGI)."""
    from gpuctl.engines import engine_notice
    from gpuctl.perf.offers import Serving

    chosen = engine or app.project.engine or "vllm"
    notice = engine_notice(chosen)
    if notice:
        warn(app, notice)
    return Serving(engine=chosen, quantization=quantization, input_tokens=input_len,  # type: ignore[arg-type]
                   output_tokens=output_len, concurrency=concurrency, slo=slo)


def bench_history(app: App) -> list[BenchRecord]:
    """The project's stored benches, which correct the estimates; none when the state file cannot be read."""
    from gpuctl.errors import StateError

    try:
        return app.state.read().bench_runs
    except StateError as exc:
        warn(app, f"estimates ignore bench history: {exc.one_line()}")
        return []


def _basis(row: Any) -> str | None:
    est = row.estimate
    if est is None:
        return None
    return f"measured x{est.runs}" if est.basis == "measured" else "model"


def _tokens(row: Any) -> str | None:
    est = row.estimate
    if est is None:
        return None
    mark = "" if row.meets_slo is not False else " (slo)"
    return f"{est.output_tokens_per_s:,.0f}{mark}"


#: the estimate's columns, for any row with ``estimate``, ``meets_slo`` and ``usd_per_1m_output_tokens``
ESTIMATE_COLUMNS = [
    Column("C", lambda r: r.estimate.inputs.concurrency if r.estimate else None, "right"),
    Column("TOK/S", _tokens, "right"),
    Column("TTFT MS", lambda r: f"{r.estimate.ttft_ms:,.0f}" if r.estimate else None, "right"),
    Column("ITL MS", lambda r: f"{r.estimate.itl_ms:.1f}" if r.estimate else None, "right"),
    Column("$/1M OUT", lambda r: None if r.usd_per_1m_output_tokens is None else f"{r.usd_per_1m_output_tokens:.3f}",
           "right"),
    Column("BASIS", _basis),
]
