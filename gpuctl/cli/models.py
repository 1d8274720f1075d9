"""``gpuctl models``: the recipes gpuctl can serve (``show NAME`` prints one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import Column, print_json, print_rows

F = TypeVar("F", bound=Callable[..., Any])


def hf_config_option(func: F) -> F:
    """``--hf-config PATH``: the config.json of an ``hf:ORG/NAME`` model, instead of asking the hub."""
    return click.option("--hf-config", "hf_config", type=click.Path(dir_okay=False), metavar="PATH",
                        help="config.json of an hf:ORG/NAME model (else it is read from the hub).")(func)


@click.group(invoke_without_command=True)
@json_option
@quiet_option
@click.pass_context
def models(ctx: click.Context) -> None:
    """List model recipes: gpuctl's own, the user's (config dir) and the project's (recipes/).

    A project recipe wins over a user recipe of the same name, which wins over gpuctl's own.
    Any other Hugging Face model works as hf:ORG/NAME[@REVISION]. -q prints only the names.
    """
    if ctx.invoked_subcommand is not None:
        return
    from gpuctl.models.recipe import RecipeRow
    from gpuctl.recipes import RecipeBook

    app: App = ctx.obj
    rows = [RecipeRow.of(r) for r in RecipeBook(app.project_root).all()]
    if app.quiet and not app.json:
        click.echo("".join(f"{row.name}\n" for row in rows), nl=False)
        return
    print_rows(app, rows, [
        Column("NAME", "name"),
        Column("PARAMS", lambda r: f"{r.parameters_b:g}B", justify="right"),
        Column("CONTEXT", "default_context", justify="right"),
        Column("MAX", "max_context", justify="right"),
        Column("QUANT", "quantization"),
        Column("GATED", lambda r: {True: "yes", False: "no", None: "?"}[r.gated]),
        Column("FROM", "origin"),
    ], empty="no recipes found")


@models.command()
@click.argument("name")
@hf_config_option
@json_option
@click.pass_obj
def show(app: App, name: str, hf_config: str | None) -> None:
    """Print the recipe NAME (or hf:ORG/NAME) with its memory figures."""
    import yaml

    from gpuctl.fit import memory_facts
    from gpuctl.recipes import resolve_model

    recipe = resolve_model(name, app.project_root, hf_config)
    document = {**recipe.model_dump(mode="json"), "memory": memory_facts(recipe).model_dump(mode="json")}
    if app.json:
        print_json(document)
    else:
        click.echo(yaml.safe_dump(document, sort_keys=False).rstrip())
