"""Kubernetes manifests for a model: the engine gpuctl would run, as objects for the user's own cluster.

One node per replica: a Deployment of ``replicas`` identical pods, a Service in front of them, a
PersistentVolumeClaim for the Hugging Face cache and the API key as a Secret. Several nodes per
replica: a LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) runs vLLM's own multi-node mode instead of
the Deployment. With ``kserve``: a KServe LLMInferenceService instead of the workload, Service and
volume, which KServe makes itself. The engine's image and arguments are exactly what gpuctl's engine
spec builds (``gpuctl.engines``); only the model's location differs under KServe, which fetches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from gpuctl.engines import HF_TOKEN_ENV, allow_pickle_weights, build_engine_spec
from gpuctl.engines.vllm import MULTI_NODE_IMAGE, node_args
from gpuctl.errors import UsageError
from gpuctl.export.request import K8sRequest
from gpuctl.export.sizing import PROBE_PERIOD_S, PodSizing, size_pods
from gpuctl.fit import FitSettings
from gpuctl.models.engine import HOST_PORT, EngineOptions, EngineSpec
from gpuctl.models.recipe import Recipe

LWS_API = "leaderworkerset.x-k8s.io/v1"
KSERVE_API = "serving.kserve.io/v1alpha1"
#: the Service's port, the same gpuctl publishes engines on elsewhere
SERVICE_PORT = HOST_PORT
CONTAINER = "engine"
#: the file of the API key Secret in an output directory
API_KEY_FILE = "secret-api-key.yaml"
#: KServe's LLMInferenceService templates name the engine container so; the user's fields merge into it
KSERVE_CONTAINER = "main"
#: environment variables the LeaderWorkerSet controller sets in every container of a group
LWS_LEADER_ADDRESS = "LWS_LEADER_ADDRESS"
LWS_WORKER_INDEX = "LWS_WORKER_INDEX"
#: the pod's own IP (downward API), which vLLM also reads to know its address
POD_IP_ENV = "VLLM_HOST_IP"
#: GPU nodes are often tainted so only GPU pods land there (GKE, the GPU operator's docs)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


class Manifest(BaseModel):
    """One Kubernetes object, and the file it is written to."""

    kind: str
    name: str
    file: str = Field(description="file name under the output directory")
    secret: bool = Field(default=False, description="holds a secret value: written 0600, never printed")
    document: dict[str, Any]


class K8sExport(BaseModel):
    """The manifests, and what the user still has to do or know."""

    manifests: list[Manifest]
    sizing: PodSizing
    actions: list[str] = Field(default_factory=list, description="steps the manifests need before they work")
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class _Workload:
    request: K8sRequest
    recipe: Recipe
    spec: EngineSpec
    sizing: PodSizing

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def image(self) -> str:
        return MULTI_NODE_IMAGE if self.sizing.nodes > 1 else self.spec.image


def export_k8s(request: K8sRequest, recipe: Recipe, *, api_key: str | None) -> K8sExport:
    """The manifests serving ``recipe`` as ``request`` says; exit 2 when it does not fit or cannot be built.

    ``api_key``: the value of the API key Secret to include; None leaves the Secret out (the workload
    still reads it) and says how to create it.
    """
    _check(request)
    settings = FitSettings(engine=request.engine, gpu_memory_utilization=request.gpu_memory_utilization,
                           quantization=request.quantization)
    sizing = size_pods(recipe, gpu=request.gpu, gpu_count=request.gpu_count, nodes=request.nodes,
                       replicas=request.replicas, context=request.max_model_len, settings=settings)
    options = EngineOptions(
        engine=request.engine, gpu_count=sizing.gpu_count, max_model_len=sizing.fit.context,
        gpu_memory_utilization=request.gpu_memory_utilization, quantization=request.quantization,
        served_model_name=request.served_model_name, api_key=True, hf_token=recipe.gated is not False,
    )
    spec = build_engine_spec(recipe, options)
    if request.allow_pickle:
        spec = allow_pickle_weights(spec)
    work = _Workload(request=request, recipe=recipe, spec=spec, sizing=sizing)
    manifests = [_api_key_secret(work, api_key)] if api_key else []
    if request.kserve:
        manifests.append(_manifest(_llm_inference_service(work), "llminferenceservice.yaml"))
    else:
        workload = _leader_worker_set(work) if sizing.nodes > 1 else _deployment(work)
        manifests += [_manifest(_cache_claim(work), "pvc.yaml"),
                      _manifest(workload, f"{workload['kind'].lower()}.yaml"),
                      _manifest(_service(work), "service.yaml")]
    return K8sExport(manifests=manifests, sizing=sizing, actions=_actions(work, api_key),
                     notes=_notes(work))


def _check(request: K8sRequest) -> None:
    if request.nodes > 1 and request.engine != "vllm":
        raise UsageError(f"{request.engine} has no multi-node mode", "use --engine vllm, or one node (no --nodes)")
    if request.kserve and request.engine != "vllm":
        raise UsageError("KServe's LLMInferenceService runs vLLM", "use --engine vllm, or drop --kserve")


# -- names -----------------------------------------------------------------------------------------
def api_key_secret_name(name: str) -> str:
    return f"{name}-api-key"


def hf_token_secret_name(name: str) -> str:
    return f"{name}-hf-token"


def cache_claim_name(name: str) -> str:
    return f"{name}-hf-cache"


def leader_worker_set_name(name: str) -> str:
    """The LeaderWorkerSet's own name; it makes a headless Service of that name, so not the base name."""
    return f"{name}-lws"


# -- objects ---------------------------------------------------------------------------------------
def _manifest(document: dict[str, Any], file: str, *, secret: bool = False) -> Manifest:
    return Manifest(kind=document["kind"], name=document["metadata"]["name"], file=file, secret=secret,
                    document=document)


def _metadata(work: _Workload, name: str, *, annotate: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if work.request.namespace:
        meta["namespace"] = work.request.namespace
    meta["labels"] = _labels(work)
    if annotate:
        recipe = work.recipe
        meta["annotations"] = {"gpuctl.dev/model": recipe.name, "gpuctl.dev/repo": f"{recipe.repo}@{recipe.revision}",
                               "gpuctl.dev/gpu": f"{work.sizing.gpu_count} x {work.request.gpu}"}
    return meta


def _labels(work: _Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": work.name, "app.kubernetes.io/component": "inference-engine",
            "app.kubernetes.io/managed-by": "gpuctl"}


def _selector(work: _Workload) -> dict[str, str]:
    return {"app.kubernetes.io/name": work.name, "app.kubernetes.io/component": "inference-engine"}


def _api_key_secret(work: _Workload, api_key: str) -> Manifest:
    assert work.spec.api_key_env is not None
    document = {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(work, api_key_secret_name(work.name)),
                "type": "Opaque", "stringData": {work.spec.api_key_env: api_key}}
    return _manifest(document, API_KEY_FILE, secret=True)


def _cache_claim(work: _Workload) -> dict[str, Any]:
    # one pod mounts the volume alone; several (replicas, nodes) share it, which needs ReadWriteMany
    mode = "ReadWriteOnce" if work.sizing.pods == 1 else "ReadWriteMany"
    spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": f"{work.sizing.cache_gib}Gi"}}}
    if work.request.storage_class:
        spec["storageClassName"] = work.request.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _metadata(work, cache_claim_name(work.name)), "spec": spec}


def _deployment(work: _Workload) -> dict[str, Any]:
    replicas = work.sizing.replicas
    # a surge pod would need a second set of free GPUs (and a ReadWriteOnce volume cannot follow it)
    strategy: dict[str, Any] = ({"type": "Recreate"} if replicas == 1 else
                                {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    container = _container(work, _literal(work.spec.args), probes=True)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(work, work.name, annotate=True),
        "spec": {"replicas": replicas, "strategy": strategy, "selector": {"matchLabels": _selector(work)},
                 "template": {"metadata": {"labels": _labels(work)}, "spec": _pod_spec(work, container)}},
    }


def _leader_worker_set(work: _Workload) -> dict[str, Any]:
    nodes, args = work.sizing.nodes, _literal(work.spec.args)
    # rank 0 binds where the others connect, so it is given its own IP; they reach it by the leader's name
    leader = _container(work, node_args(args, nodes=nodes, node_rank=0, master_addr=f"$({POD_IP_ENV})"), probes=True)
    worker = _container(work, node_args(args, nodes=nodes, node_rank=f"$({LWS_WORKER_INDEX})",
                                        master_addr=f"$({LWS_LEADER_ADDRESS})"), probes=False)
    template = {"metadata": {"labels": _labels(work)}}
    return {
        "apiVersion": LWS_API, "kind": "LeaderWorkerSet",
        "metadata": _metadata(work, leader_worker_set_name(work.name), annotate=True),
        "spec": {
            "replicas": work.sizing.replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": nodes,
                # a lost node stops the whole engine: restart the group together
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {**template, "spec": _pod_spec(work, leader)},
                "workerTemplate": {**template, "spec": _pod_spec(work, worker)},
            },
        },
    }


def _service(work: _Workload) -> dict[str, Any]:
    if work.sizing.nodes > 1:
        # only rank 0 of each group serves the API
        selector = {"leaderworkerset.sigs.k8s.io/name": leader_worker_set_name(work.name),
                    "leaderworkerset.sigs.k8s.io/worker-index": "0"}
    else:
        selector = _selector(work)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(work, work.name),
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}]}}


def _llm_inference_service(work: _Workload) -> dict[str, Any]:
    recipe, sizing = work.recipe, work.sizing
    args = _literal(_without_model_source(work.spec.args, recipe))
    spec: dict[str, Any] = {
        # KServe's storage initializer fetches the model at this revision into /mnt/models
        "model": {"uri": f"hf://{recipe.repo}:{recipe.revision}", "name": work.spec.served_model_name},
        "replicas": sizing.replicas,
        "parallelism": {"tensor": sizing.gpu_count, **({"pipeline": sizing.nodes} if sizing.nodes > 1 else {})},
        "template": {"containers": [_kserve_container(work, args)]},
    }
    if sizing.nodes > 1:
        # KServe's multi-node template adds the rank, leader address and node count itself
        spec["worker"] = {"containers": [_kserve_container(work, args)]}
    return {"apiVersion": KSERVE_API, "kind": "LLMInferenceService",
            "metadata": _metadata(work, work.name, annotate=True), "spec": spec}


# -- pods ------------------------------------------------------------------------------------------
def _pod_spec(work: _Workload, container: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    labels = work.sizing.gpu_product_labels
    if labels:
        term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": labels}]}
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [term]}}}
    spec["tolerations"] = [GPU_TOLERATION]
    spec["containers"] = [container]
    spec["volumes"] = [
        {"name": "hf-cache", "persistentVolumeClaim": {"claimName": cache_claim_name(work.name)}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": _quantity(work.spec.shm_size)}},
    ]
    return spec


def _container(work: _Workload, args: list[str], *, probes: bool) -> dict[str, Any]:
    spec = work.spec
    container: dict[str, Any] = {"name": CONTAINER, "image": work.image}
    if spec.entrypoint:
        container["command"] = list(spec.entrypoint)
    container["args"] = args
    container["env"] = _env(work)
    container["ports"] = [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}]
    container["resources"] = _resources(work)
    if probes:
        container.update(_probes(work))
    container["volumeMounts"] = [{"name": "hf-cache", "mountPath": spec.cache_mount},
                                 {"name": "shm", "mountPath": "/dev/shm"}]
    return container


def _kserve_container(work: _Workload, args: list[str]) -> dict[str, Any]:
    # KServe's template supplies the command (vllm serve /mnt/models), port, probes and volumes
    return {"name": KSERVE_CONTAINER, "image": work.image, "args": args, "env": _env(work, pod_ip=False),
            "resources": _resources(work)}


def _env(work: _Workload, *, pod_ip: bool = True) -> list[dict[str, Any]]:
    spec, name = work.spec, work.name
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in spec.env.items()]
    if pod_ip and work.sizing.nodes > 1:
        env.append({"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    if spec.api_key_env:
        env.append(_secret_env(spec.api_key_env, api_key_secret_name(name), optional=False))
    if HF_TOKEN_ENV in spec.secret_env:
        # a repo not known to be gated starts without the token when the Secret is absent
        env.append(_secret_env(HF_TOKEN_ENV, hf_token_secret_name(name), optional=work.recipe.gated is None))
    return env


def _secret_env(variable: str, secret: str, *, optional: bool) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": variable, "optional": optional}}}


def _resources(work: _Workload) -> dict[str, Any]:
    # no memory limit: loading reads the weights through the page cache, which a limit would count
    gpus = str(work.sizing.gpu_count)
    return {"requests": {"cpu": str(work.sizing.cpus), "memory": f"{work.sizing.memory_gib}Gi", "nvidia.com/gpu": gpus},
            "limits": {"nvidia.com/gpu": gpus}}


def _probes(work: _Workload) -> dict[str, Any]:
    http = {"path": work.spec.health_path, "port": "http"}
    return {
        # download and load: the readiness and liveness probes start only after this one passed
        "startupProbe": {"httpGet": http, "periodSeconds": PROBE_PERIOD_S,
                         "failureThreshold": work.sizing.startup_probe_failures},
        "readinessProbe": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        # a busy engine answers slowly: restart only after a minute and a half without an answer
        "livenessProbe": {"httpGet": http, "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 3},
    }


# -- helpers ---------------------------------------------------------------------------------------
def _literal(args: Sequence[str]) -> list[str]:
    """Arguments as Kubernetes passes them: ``$(NAME)`` expands a variable there, ``$$(`` is a literal ``$(``."""
    return [arg.replace("$(", "$$(") for arg in args]


def _without_model_source(args: Sequence[str], recipe: Recipe) -> list[str]:
    """vLLM's arguments without the model and its revision, which KServe fetches and passes itself."""
    out: list[str] = []
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif index == 0 and arg == recipe.repo:
            continue
        elif arg in ("--revision", "--tokenizer-revision"):
            skip = True
        else:
            out.append(arg)
    return out


def _quantity(docker_size: str) -> str:
    """Docker's binary size units ('8g') as a Kubernetes quantity ('8Gi')."""
    units = {"k": "Ki", "m": "Mi", "g": "Gi"}
    number, unit = docker_size[:-1], docker_size[-1].lower()
    return f"{number}{units[unit]}" if unit in units else docker_size


def _actions(work: _Workload, api_key: str | None) -> list[str]:
    namespace = f" -n {work.request.namespace}" if work.request.namespace else ""
    actions = []
    if api_key is None and work.spec.api_key_env:
        actions.append(f"create the API key Secret first: openssl rand -hex 32 | kubectl create secret generic "
                       f"{api_key_secret_name(work.name)}{namespace} --from-file={work.spec.api_key_env}=/dev/stdin")
    if work.recipe.gated is True:
        actions.append(f"{work.recipe.repo} is gated: kubectl create secret generic {hf_token_secret_name(work.name)}"
                       f"{namespace} --from-file={HF_TOKEN_ENV}=$HOME/.cache/huggingface/token")
    return actions


def _notes(work: _Workload) -> list[str]:
    sizing, request = work.sizing, work.request
    notes = [f"{work.recipe.name}: {sizing.pods} pod(s) of {sizing.gpu_count} x {request.gpu}, "
             f"{sizing.fit.weights_gb:.1f} GB of weights and {sizing.fit.kv_cache_gb:.1f} GB of KV cache per GPU, "
             f"context {sizing.fit.context}"]
    if work.recipe.gated is None:
        notes.append(f"if {work.recipe.repo} is gated, create the Secret {hf_token_secret_name(work.name)} "
                     f"with its {HF_TOKEN_ENV}")
    if not sizing.gpu_product_labels:
        notes.append(f"no GPU Feature Discovery label is known for {request.gpu}: the pods may land on any GPU node")
    if request.kserve:
        notes.append("needs KServe's LLMInferenceService controller; add spec.router to expose it through your gateway")
        if work.recipe.gated is not False:
            notes.append(f"KServe's storage initializer downloads {work.recipe.repo}: give it the Hugging Face "
                         "token as KServe's docs say")
        return notes
    if sizing.nodes > 1:
        notes.append("needs the LeaderWorkerSet controller (lws.sigs.k8s.io) in the cluster")
    if sizing.pods > 1:
        notes.append("the pods share one cache volume: its storage class must offer ReadWriteMany (--storage-class)")
    if sizing.replicas > 1:
        notes.append("the Service spreads requests over the replicas; a cache-aware router and autoscaling belong "
                     "to the cluster (docs/scale.md)")
    return notes
