"""Kubernetes manifests (``gpuctl.export``), checked without a cluster.

Core objects (Deployment, Service, PersistentVolumeClaim, Secret) are validated against the
Kubernetes OpenAPI schemas bundled by the ``kubernetes-validate`` package, in strict mode (an unknown
field fails). The LeaderWorkerSet and KServe LLMInferenceService are custom resources no PyPI package
carries the schemas of: their pod templates are validated as Kubernetes pod templates, and their own
fields are checked against the field lists of the published Go types (cited at LWS_FIELDS and
KSERVE_FIELDS).
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gpuctl.engines import build_engine_spec, vllm
from gpuctl.errors import ExitCode, UsageError
from gpuctl.export.k8s import K8sExport, export_k8s
from gpuctl.export.names import DNS1035_LABEL, base_name
from gpuctl.export.output import to_yaml
from gpuctl.export.request import K8sRequest
from gpuctl.models.engine import EngineOptions
from gpuctl.models.recipe import EngineDefaults
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()
#: an old Kubernetes still supported by managed offerings, and the newest the package bundles
VERSIONS = ("1.29", kubernetes_validate.latest_version())
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: LeaderWorkerSet fields, from kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go
#: (LeaderWorkerSetSpec, LeaderWorkerTemplate); "pod-template" marks a corev1.PodTemplateSpec
LWS_FIELDS: dict[str, Any] = {
    "apiVersion": None, "kind": None, "metadata": "metadata",
    "spec": {
        "replicas": None, "rolloutStrategy": None, "startupPolicy": None, "networkConfig": None,
        "leaderWorkerTemplate": {
            "leaderTemplate": "pod-template", "workerTemplate": "pod-template", "size": None,
            "restartPolicy": None, "subGroupPolicy": None, "volumeClaimTemplates": None,
            "persistentVolumeClaimRetentionPolicy": None,
        },
    },
}
LWS_ENUMS = {("spec", "startupPolicy"): {"LeaderCreated", "LeaderReady"},
             ("spec", "leaderWorkerTemplate", "restartPolicy"): {"Default", "RecreateGroupOnPodRestart",
                                                                 "RecreateGroupAfterStart", "None"}}
#: LLMInferenceService fields, from kserve/kserve pkg/apis/serving/v1alpha1/llm_inference_service_types.go
#: (LLMInferenceServiceSpec with its inlined WorkloadSpec, LLMModelSpec, ParallelismSpec); "pod-spec"
#: marks a corev1.PodSpec. KServe's own docs (LLMInferenceService configuration guide) use the same.
KSERVE_FIELDS: dict[str, Any] = {
    "apiVersion": None, "kind": None, "metadata": "metadata",
    "spec": {
        "model": {"uri": None, "name": None, "criticality": None, "lora": None},
        "replicas": None, "parallelism": {"tensor": None, "pipeline": None, "data": None, "dataLocal": None,
                                          "dataRPCPort": None, "expert": None},
        "template": "pod-spec", "worker": "pod-spec", "router": None, "prefill": None, "baseRefs": None,
        "labels": None, "annotations": None,
    },
}


def validate(document: dict[str, Any]) -> None:
    """Strict schema validation (an unknown field fails), with a one-line failure."""
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{document['kind']} invalid for Kubernetes {version} at {where}: {exc.message}")


def check_fields(document: Any, fields: Any, path: tuple[str, ...] = ()) -> None:
    """Every field of ``document`` is in ``fields``; pod templates and specs are validated as such."""
    if fields == "pod-template":
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": document})
    elif fields == "pod-spec":
        validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": document})
    elif fields == "metadata":
        validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": document})
    elif isinstance(fields, dict):
        unknown = set(document) - set(fields)
        assert not unknown, f"{'.'.join(path) or 'top level'}: fields {sorted(unknown)} are not in the published API"
        for key, value in document.items():
            check_fields(value, fields[key], (*path, key))


def request(model: str = "llama-3.1-8b", **fields: Any) -> K8sRequest:
    values: dict[str, Any] = {"model": model, "name": base_name(model), "gpu": "L4", **fields}
    return K8sRequest(**values)


def documents(result: K8sExport) -> dict[str, dict[str, Any]]:
    return {m.kind: m.document for m in result.manifests}


def container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    [only] = pod_spec["containers"]
    return only


def test_single_node_objects_are_valid_kubernetes() -> None:
    result = export_k8s(request(), BOOK.get("llama-3.1-8b"), api_key="k3y")
    assert [m.kind for m in result.manifests] == ["Secret", "PersistentVolumeClaim", "Deployment", "Service"]
    for manifest in result.manifests:
        validate(manifest.document)
    # and the YAML stream parses back to the same objects
    assert list(yaml.safe_load_all(to_yaml([m.document for m in result.manifests], "a\nheader"))) == [
        m.document for m in result.manifests]


def test_the_container_runs_exactly_the_engine_spec() -> None:
    recipe = BOOK.get("llama-3.1-8b")
    result = export_k8s(request(), recipe, api_key=None)
    expected = build_engine_spec(recipe, EngineOptions(gpu_count=1, api_key=True, hf_token=True))
    engine = container(documents(result)["Deployment"]["spec"]["template"]["spec"])
    assert engine["image"] == expected.image == vllm.IMAGE
    assert engine["command"] == expected.entrypoint
    assert engine["args"] == expected.args
    assert {e["name"]: e.get("value") for e in engine["env"] if "value" in e} == expected.env
    assert engine["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_gpus_memory_cache_and_probes_are_sized_from_fit() -> None:
    result = export_k8s(request(), BOOK.get("llama-3.1-8b"), api_key=None)
    docs = documents(result)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    engine = container(pod)
    assert engine["resources"] == {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
                                   "limits": {"nvidia.com/gpu": "1"}}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert engine[probe]["httpGet"] == {"path": "/health", "port": "http"}
    # 16.06 GB of weights: 30 minutes plus 10 s per GB before a restart, probed every 10 s
    assert engine["startupProbe"]["failureThreshold"] == 197
    # the whole 16.06 GB checkpoint with a fifth of room, in GiB
    claim = docs["PersistentVolumeClaim"]["spec"]
    assert claim == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "18Gi"}}}
    assert {"name": "hf-cache", "mountPath": "/root/.cache/huggingface"} in engine["volumeMounts"]
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod["volumes"]
    affinity = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4"]}]
    assert result.sizing.gpu_count == 1 and docs["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}


def test_the_fewest_gpus_that_fit_and_a_family_covers_its_skus() -> None:
    result = export_k8s(request("llama-3.1-70b", gpu="H100"), BOOK.get("llama-3.1-70b"), api_key=None)
    engine = container(documents(result)["Deployment"]["spec"]["template"]["spec"])
    assert result.sizing.gpu_count == 4 and result.sizing.gpus == ["H100-SXM", "H100-PCIE", "H100-NVL"]
    assert engine["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert engine["args"][engine["args"].index("--tensor-parallel-size") + 1] == "4"
    values = documents(result)["Deployment"]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
    assert values == ["H100-80GB-HBM3", "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"]


def test_replicas_share_a_read_write_many_cache_and_roll_one_at_a_time() -> None:
    result = export_k8s(request(replicas=3, storage_class="filestore"), BOOK.get("llama-3.1-8b"), api_key=None)
    docs = documents(result)
    assert docs["Deployment"]["spec"]["replicas"] == 3
    assert docs["Deployment"]["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert docs["PersistentVolumeClaim"]["spec"]["storageClassName"] == "filestore"
    assert any("router and autoscaling belong to the cluster" in note for note in result.notes)
    for manifest in result.manifests:
        validate(manifest.document)


def test_the_api_key_secret_only_when_a_value_is_given() -> None:
    with_key = export_k8s(request(), BOOK.get("llama-3.1-8b"), api_key="s3cret")
    [secret] = [m for m in with_key.manifests if m.kind == "Secret"]
    assert secret.secret and secret.file == "secret-api-key.yaml"
    assert secret.document["stringData"] == {"VLLM_API_KEY": "s3cret"}
    without = export_k8s(request(), BOOK.get("llama-3.1-8b"), api_key=None)
    assert not any(m.secret or "s3cret" in str(m.document) for m in without.manifests)
    assert any("kubectl create secret generic llama-3-1-8b-api-key --from-file=VLLM_API_KEY=/dev/stdin" in a
               for a in without.actions)
    # the workload reads the key from the Secret either way, and the gated model's token too
    env = container(documents(without)["Deployment"]["spec"]["template"]["spec"])["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs == {"VLLM_API_KEY": {"name": "llama-3-1-8b-api-key", "key": "VLLM_API_KEY", "optional": False},
                    "HF_TOKEN": {"name": "llama-3-1-8b-hf-token", "key": "HF_TOKEN", "optional": False}}


def test_an_ungated_model_reads_no_token() -> None:
    result = export_k8s(request("qwen2.5-7b"), BOOK.get("qwen2.5-7b"), api_key=None)
    env = container(documents(result)["Deployment"]["spec"]["template"]["spec"])["env"]
    assert "HF_TOKEN" not in {e["name"] for e in env}
    assert not any("gated" in a for a in result.actions)


def test_multi_node_is_a_leader_worker_set_running_vllm_across_nodes() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    result = export_k8s(request("llama-3.1-70b", nodes=2, gpu_count=4, replicas=2), recipe, api_key="k")
    docs = documents(result)
    assert [m.kind for m in result.manifests] == ["Secret", "PersistentVolumeClaim", "LeaderWorkerSet", "Service"]
    lws = docs["LeaderWorkerSet"]
    check_fields(lws, LWS_FIELDS)
    for path, allowed in LWS_ENUMS.items():
        value: Any = lws
        for key in path:
            value = value[key]
        assert value in allowed
    assert (lws["apiVersion"], lws["metadata"]["name"]) == ("leaderworkerset.x-k8s.io/v1", "llama-3-1-70b-lws")
    assert lws["spec"]["replicas"] == 2 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    single = build_engine_spec(recipe, EngineOptions(gpu_count=4, api_key=True, hf_token=True)).args
    template = lws["spec"]["leaderWorkerTemplate"]
    leader = container(template["leaderTemplate"]["spec"])
    worker = container(template["workerTemplate"]["spec"])
    assert leader["image"] == worker["image"] == vllm.MULTI_NODE_IMAGE
    assert leader["args"] == vllm.node_args(single, nodes=2, node_rank=0, master_addr="$(VLLM_HOST_IP)")
    assert worker["args"] == vllm.node_args(single, nodes=2, node_rank="$(LWS_WORKER_INDEX)",
                                            master_addr="$(LWS_LEADER_ADDRESS)")
    assert worker["args"][-1] == "--headless" and "startupProbe" not in worker and "startupProbe" in leader
    pod_ip = {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    assert pod_ip in leader["env"] and pod_ip in worker["env"]
    assert leader["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    # the Service reaches rank 0 of each group only; all four pods share the cache
    assert docs["Service"]["spec"]["selector"] == {"leaderworkerset.sigs.k8s.io/name": "llama-3-1-70b-lws",
                                                   "leaderworkerset.sigs.k8s.io/worker-index": "0"}
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for kind in ("Secret", "PersistentVolumeClaim", "Service"):
        validate(docs[kind])


def test_multi_node_sizes_each_node_with_the_pipeline_split() -> None:
    # 70B does not fit one node of 4 x L4; split over two nodes, each holds half the layers
    recipe = BOOK.get("llama-3.1-70b")
    with pytest.raises(UsageError, match=r"does not fit on 4 x L4 at 8192 tokens"):
        export_k8s(request("llama-3.1-70b", gpu_count=4), recipe, api_key=None)
    result = export_k8s(request("llama-3.1-70b", nodes=2), recipe, api_key=None)
    assert (result.sizing.gpu_count, result.sizing.nodes, result.sizing.fit.fits) == (4, 2, True)


def test_kserve_llm_inference_service_instead_of_the_workload() -> None:
    recipe = BOOK.get("llama-3.1-8b")
    result = export_k8s(request(kserve=True, replicas=2), recipe, api_key="k")
    assert [m.kind for m in result.manifests] == ["Secret", "LLMInferenceService"]
    isvc = documents(result)["LLMInferenceService"]
    check_fields(isvc, KSERVE_FIELDS)
    assert isvc["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = isvc["spec"]
    assert spec["model"] == {"uri": f"hf://{recipe.repo}:{recipe.revision}", "name": recipe.repo}
    assert (spec["replicas"], spec["parallelism"]) == (2, {"tensor": 1})
    main = container(spec["template"])
    assert main["name"] == "main" and "worker" not in spec
    # KServe fetches the model and passes its path: the rest of the arguments are gpuctl's
    single = build_engine_spec(recipe, EngineOptions(gpu_count=1, api_key=True, hf_token=True)).args
    at = single.index("--served-model-name")
    assert single[:at] == [recipe.repo, "--revision", recipe.revision, "--tokenizer-revision", recipe.revision]
    assert main["args"] == single[at:]


def test_kserve_multi_node_has_a_worker_and_pipeline_parallelism() -> None:
    result = export_k8s(request("llama-3.1-70b", kserve=True, nodes=2), BOOK.get("llama-3.1-70b"), api_key=None)
    spec = documents(result)["LLMInferenceService"]["spec"]
    check_fields(documents(result)["LLMInferenceService"], KSERVE_FIELDS)
    assert spec["parallelism"] == {"tensor": 4, "pipeline": 2}
    assert container(spec["worker"])["args"] == container(spec["template"])["args"]
    assert "--nnodes" not in container(spec["template"])["args"]  # KServe's multi-node template adds them


def test_tgi_runs_its_own_launcher_and_key() -> None:
    result = export_k8s(request("qwen2.5-7b", engine="tgi"), BOOK.get("qwen2.5-7b"), api_key="k")
    docs = documents(result)
    engine = container(docs["Deployment"]["spec"]["template"]["spec"])
    assert "command" not in engine and engine["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    assert engine["ports"][0]["containerPort"] == 80
    assert {"name": "hf-cache", "mountPath": "/data"} in engine["volumeMounts"]
    assert docs["Secret"]["stringData"] == {"API_KEY": "k"}
    for manifest in result.manifests:
        validate(manifest.document)


def test_names_are_valid_and_dollar_parentheses_stay_literal() -> None:
    recipe = BOOK.get("llama-3-8b").model_copy(update={
        "engines": {"vllm": EngineDefaults(args=["--chat-template=$(cat x)"])}})
    result = export_k8s(request("llama-3-8b", name="m", namespace="team-a", nodes=2), recipe, api_key="k")
    for manifest in result.manifests:
        name = manifest.document["metadata"]["name"]
        assert DNS1035_LABEL.match(name) and len(name) <= 63, name
        assert manifest.document["metadata"]["namespace"] == "team-a"
    leader = container(documents(result)["LeaderWorkerSet"]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"])
    assert "--chat-template=$$(cat x)" in leader["args"] and "$(VLLM_HOST_IP)" in leader["args"]


@pytest.mark.parametrize(("text", "name"), [
    ("llama-3.1-8b", "llama-3-1-8b"), ("hf:Qwen/Qwen2.5-7B-Instruct", "qwen2-5-7b-instruct"),
    ("7b-chat", "m-7b-chat"), ("x" * 60, "x" * 40),
])
def test_base_names(text: str, name: str) -> None:
    assert base_name(text) == name
    assert DNS1035_LABEL.match(name) and DNS1123_SUBDOMAIN.match(f"{name}-hf-cache")


def test_gpus_without_a_known_label_or_not_nvidia() -> None:
    result = export_k8s(request("qwen2.5-7b", gpu="T4G", quantization="fp8"), BOOK.get("qwen2.5-7b"), api_key=None)
    assert "affinity" not in documents(result)["Deployment"]["spec"]["template"]["spec"]
    assert any("no GPU Feature Discovery label is known for T4G" in note for note in result.notes)
    with pytest.raises(UsageError, match="MI300X is an AMD GPU") as amd:
        export_k8s(request(gpu="MI300X"), BOOK.get("llama-3.1-8b"), api_key=None)
    assert amd.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(("model", "fields", "message"), [
    ("llama-3.1-8b", {"engine": "tgi", "nodes": 2}, "tgi has no multi-node mode"),
    ("llama-3.1-8b", {"engine": "tgi", "kserve": True}, "KServe's LLMInferenceService runs vLLM"),
    ("qwen2.5-7b", {"gpu_count": 8}, "8 GPUs do not divide 28 attention heads"),
    ("llama-3.1-8b", {"nodes": 40}, "40 nodes exceed the 32 layers"),
    ("llama-3.1-8b", {"max_model_len": 10**6}, "above the maximum"),
])
def test_what_cannot_be_exported_exits_2(model: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        export_k8s(request(model, **fields), BOOK.get(model), api_key=None)
    assert refused.value.exit_code == ExitCode.USAGE
