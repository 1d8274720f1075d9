"""``gpuctl export``: what gpuctl would run, as manifests for infrastructure the user runs (Kubernetes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gpuctl.app import App
from gpuctl.cli.fit import serving_options
from gpuctl.cli.options import json_option, quiet_option
from gpuctl.cli.output import info, print_json, warn
from gpuctl.errors import NotFoundError

if TYPE_CHECKING:
    from gpuctl.export.request import ExportFlags, K8sRequest
    from gpuctl.models.recipe import Recipe


@click.group()
def export() -> None:
    """Manifests for infrastructure you run yourself; nothing is launched and no cluster is needed.

    \b
    gpuctl export k8s llama-3.1-8b --gpu l4 | kubectl apply -f -
    gpuctl export k8s NAME -o k8s/       # what deployment NAME runs, for your cluster
    """


@export.command("k8s", short_help="Kubernetes manifests: Deployment, LeaderWorkerSet or KServe.")
@click.argument("target", metavar="NAME|MODEL")
@click.option("--gpu", default=None, metavar="GPU",
              help="GPU of your nodes (aliases and families accepted; default: the deployment's, else the project's).")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="GPUs per pod (per node with --nodes; default: the deployment's, else the fewest that fit).")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Identical replicas behind the Service (routing and autoscaling: docs/scale.md).")
@click.option("--nodes", type=click.IntRange(min=1), default=None, metavar="N",
              help="Nodes per replica: a LeaderWorkerSet running vLLM across them (pipeline parallel).")
@click.option("--context", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Context length to serve (default: the deployment's, else the recipe's).")
@click.option("--name", default=None, metavar="BASE", help="Base of the object names (default: from NAME or MODEL).")
@click.option("--namespace", default=None, metavar="NS", help="Namespace of the objects (default: kubectl's).")
@click.option("--storage-class", default=None, metavar="CLASS",
              help="Storage class of the weights volume (ReadWriteMany when several pods share it).")
@click.option("--kserve", is_flag=True,
              help="A KServe LLMInferenceService instead of the workload, Service and volume.")
@click.option("-o", "--output", default="-", show_default=True, metavar="DIR|-",
              help="Directory for one file per object (API key Secret included, mode 0600), or - for stdout.")
@serving_options
@json_option
@quiet_option
@click.pass_obj
def k8s(app: App, target: str, gpu: str | None, count: int | None, replicas: int, nodes: int | None,
        context: int | None, name: str | None, namespace: str | None, storage_class: str | None, kserve: bool,
        output: str, engine: str | None, gpu_memory_utilization: float | None, quantization: str | None,
        hf_config: str | None) -> None:
    """Kubernetes manifests serving NAME (a deployment: what it runs) or MODEL (recipe or hf:ORG/NAME).

    \b
    One node per replica: a Deployment, a Service, a volume for the weights cache and the
    API key Secret. --nodes N: a LeaderWorkerSet running vLLM's own multi-node mode instead.
    The engine image and arguments are those 'gpuctl up' runs; GPUs per pod from 'gpuctl fit'.
    To stdout (-o -) the API key Secret is left out and the command to create it is printed on
    stderr; into a directory it is written with a new key (kept on later exports), mode 0600.
    """
    from gpuctl.catalog import resolve_gpu
    from gpuctl.export.request import ExportFlags

    flags = ExportFlags(
        gpu=resolve_gpu(gpu) if gpu else None, count=count, nodes=nodes, replicas=replicas, context=context,
        engine=engine, gpu_memory_utilization=gpu_memory_utilization, quantization=quantization,  # type: ignore[arg-type]
        hf_config=hf_config, name=name, namespace=namespace, storage_class=storage_class, kserve=kserve,
    )
    request, recipe = _request(app, target, flags)
    _export(app, request, recipe, output)


def _request(app: App, target: str, flags: ExportFlags) -> tuple[K8sRequest, Recipe]:
    """NAME's record when the project has a deployment of that name, else the model TARGET."""
    from gpuctl.catalog import resolve_gpu
    from gpuctl.export.request import request_for_deployment, request_for_model
    from gpuctl.recipes import resolve_model

    deployment = app.state.read().deployments.get(target)
    if deployment is not None:
        recipe = resolve_model(deployment.model, app.project_root, flags.hf_config)
        request, notes = request_for_deployment(deployment, recipe, flags)
        for note in notes:
            warn(app, note)
        return request, recipe
    try:
        recipe = resolve_model(target, app.project_root, flags.hf_config)
    except NotFoundError as exc:
        raise NotFoundError(f"'{target}' is neither a deployment of this project nor a model",
                            f"{exc.hint}; 'gpuctl status' lists the deployments") from exc
    project = app.project
    request = request_for_model(target, flags, default_gpu=resolve_gpu(project.gpu) if project.gpu else None,
                                default_engine=project.engine)  # type: ignore[arg-type]
    return request, recipe


def _export(app: App, request: K8sRequest, recipe: Recipe, output: str) -> None:
    from gpuctl import __version__
    from gpuctl.engines import engine_module
    from gpuctl.export.k8s import API_KEY_FILE, export_k8s
    from gpuctl.export.output import directory_api_key, stream, write_directory

    directory = None if output == "-" else Path(output)
    api_key = (directory_api_key(directory, API_KEY_FILE, engine_module(request.engine).API_KEY_ENV)
               if directory is not None else None)
    result = export_k8s(request, recipe, api_key=api_key)
    sizing = result.sizing
    header = (f"{recipe.name} ({recipe.repo} @ {recipe.revision}) on {sizing.pods} pod(s) of {sizing.gpu_count} x "
              f"{request.gpu}\ngenerated by gpuctl {__version__} (gpuctl export k8s)")
    if directory is None:
        public = [m for m in result.manifests if not m.secret]
        if app.json:
            print_json({"apiVersion": "v1", "kind": "List", "items": [m.document for m in public]})
        else:
            click.echo(stream(public, header), nl=False)
    else:
        paths = write_directory(directory, result.manifests, header)
        if app.json:
            print_json([{"kind": m.kind, "name": m.name, "path": str(p), "secret": m.secret}
                        for m, p in zip(result.manifests, paths, strict=True)])
        else:
            click.echo("\n".join(str(p) for p in paths))
        if api_key is not None:
            info(app, f"the API key is in {directory / API_KEY_FILE} (mode 0600; kept out of git by .gitignore)")
    for note in result.notes:
        info(app, note)
    for action in result.actions:
        warn(app, action)
