"""``gpuctl init``: write gpuctl.yaml with the project's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click

from gpuctl.app import App
from gpuctl.cli.options import json_option
from gpuctl.cli.output import info, print_json
from gpuctl.models.recipe import EngineName


@click.command()
@click.option("--name", help="Project name (default: the directory name).")
@click.option("--model", help="Default model recipe, e.g. llama-3-8b.")
@click.option("--gpu", help="Default GPU, e.g. l40s.")
@click.option("--provider", help="Default provider (runpod, lambda, aws, ...) or auto.")
@click.option("--engine", type=click.Choice(get_args(EngineName)), help="Default serving engine.")
@click.option("--region", help="Default region.")
@click.option("--ttl", help="Default time to live of a deployment, e.g. 2h.")
@click.option("--force", is_flag=True, help="Overwrite an existing gpuctl.yaml.")
@click.option("-i", "--wizard", is_flag=True,
              help="Choose model, GPU offer, engine and TTL in a wizard (needs a terminal); the flags above "
                   "answer their questions ahead.")
@json_option
@click.pass_obj
def init(app: App, force: bool, wizard: bool, **values: str | None) -> None:
    """Write gpuctl.yaml in the project directory (the current one unless --project-dir).

    With -i, also print the 'gpuctl up' command that deploys what was chosen.
    """
    from gpuctl.catalog import resolve_gpu
    from gpuctl.errors import UsageError
    from gpuctl.project import PROJECT_FILE, ProjectFile, resolve_project_root, write_project_file

    # init creates a project here; it does not walk up to an enclosing one
    root = resolve_project_root(app.project_dir) if app.project_dir else Path.cwd()
    if (root / PROJECT_FILE).exists() and not force:
        raise UsageError(f"{root / PROJECT_FILE} already exists", "pass --force to overwrite it")
    if values["model"]:
        from gpuctl.recipes import RecipeBook
        from gpuctl.recipes.hub import is_hf_ref, parse_hf_ref

        if is_hf_ref(values["model"]):
            parse_hf_ref(values["model"])  # the form only: the hub is asked when it is deployed
        else:
            RecipeBook(root).get(values["model"])  # unknown: exit 3 with close names
    if values["gpu"]:
        values["gpu"] = resolve_gpu(values["gpu"])
    if values["provider"] and values["provider"] != "auto":
        app.registry.create(values["provider"])  # unknown provider: exit 2 with close names
    answers = None
    if wizard:
        from gpuctl.cli.wizard import init_wizard

        answers = init_wizard(app, values)
        values.update(model=answers.model, gpu=answers.gpu, provider=answers.provider, engine=answers.engine,
                      ttl=answers.ttl)
    values["name"] = values["name"] or root.name
    from pydantic import ValidationError

    from gpuctl.project import describe_validation_error

    try:
        project = ProjectFile.model_validate(values)
    except ValidationError as exc:
        raise UsageError(f"invalid option: {describe_validation_error(exc)}", "see 'gpuctl init --help'") from None
    path = write_project_file(root, project)
    if app.json:
        print_json(project.model_dump(mode="json", exclude_none=True))
    info(app, f"wrote {path}")
    if answers is not None and not app.json:
        click.echo(answers.command_line())
