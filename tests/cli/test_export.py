"""``gpuctl export k8s``: manifests on stdout or in a directory, from a model or a deployment."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuctl.engines import build_engine_spec
from gpuctl.models.deployment import Deployment
from gpuctl.models.engine import EngineOptions
from gpuctl.recipes import RecipeBook
from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, make_offer, write_recipe
from tests.standins.mock_openai import MockProcess

BOOK = RecipeBook()


def record(project: Path, name: str, **fields: Any) -> None:
    """A deployment record as 'gpuctl up' writes it."""
    values: dict[str, Any] = {"model": "qwen2.5-7b", "provider": "runpod", "status": "running",
                              "idempotency_token": f"tok-{name}", "engine": "vllm", "gpu": "L40S", "gpu_count": 2,
                              **fields}
    with StateStore(project).transaction() as state:
        state.deployments[name] = Deployment(name=name, **values)


def engine_container(document: dict[str, Any]) -> dict[str, Any]:
    return document["spec"]["template"]["spec"]["containers"][0]


def test_stdout_is_yaml_without_any_secret_value(gpuctl) -> None:
    result = gpuctl("export", "k8s", "llama-3.1-8b", "--gpu", "l4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# llama-3.1-8b (meta-llama/Llama-3.1-8B-Instruct @ ")
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    assert "create the API key Secret first: openssl rand -hex 32 | kubectl create secret generic " \
           "llama-3-1-8b-api-key --from-file=VLLM_API_KEY=/dev/stdin" in result.stderr
    assert "meta-llama/Llama-3.1-8B-Instruct is gated: kubectl create secret generic llama-3-1-8b-hf-token" \
           in result.stderr


def test_json_is_a_kubernetes_list(gpuctl) -> None:
    result = gpuctl("export", "k8s", "qwen2.5-7b", "--gpu", "l40s", "--replicas", "2", "--json")
    assert result.exit_code == 0, result.stderr
    listing = json.loads(result.stdout)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    assert [i["kind"] for i in listing["items"]] == ["PersistentVolumeClaim", "Deployment", "Service"]
    assert listing["items"][1]["spec"]["replicas"] == 2


def test_a_directory_gets_one_file_each_and_the_key_0600(gpuctl, isolated: Path) -> None:
    out = isolated / "k8s"
    result = gpuctl("export", "k8s", "qwen2.5-7b", "--gpu", "l40s", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    files = ["secret-api-key.yaml", "pvc.yaml", "deployment.yaml", "service.yaml"]
    assert result.stdout.splitlines() == [str(out / f) for f in files]
    assert stat.S_IMODE((out / "secret-api-key.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "deployment.yaml").stat().st_mode) == 0o644
    assert "secret-*.yaml" in (out / ".gitignore").read_text()
    key = yaml.safe_load((out / "secret-api-key.yaml").read_text())["stringData"]["VLLM_API_KEY"]
    assert len(key) >= 40 and key not in result.stdout + result.stderr
    assert "the API key is in" in result.stderr and "create the API key Secret" not in result.stderr
    # a second export into the same directory keeps the key, so clients keep working
    again = gpuctl("export", "k8s", "qwen2.5-7b", "--gpu", "l40s", "--replicas", "2", "-o", str(out), "--json")
    rows = json.loads(again.stdout)
    assert [(r["kind"], r["secret"]) for r in rows] == [("Secret", True), ("PersistentVolumeClaim", False),
                                                        ("Deployment", False), ("Service", False)]
    assert yaml.safe_load((out / "secret-api-key.yaml").read_text())["stringData"]["VLLM_API_KEY"] == key


def test_multi_node_and_kserve_files(gpuctl, isolated: Path) -> None:
    lws = gpuctl("export", "k8s", "llama-3.1-70b", "--gpu", "l4", "--nodes", "2", "-o", str(isolated / "a"), "-q")
    assert lws.exit_code == 0, lws.stderr
    assert (isolated / "a" / "leaderworkerset.yaml").is_file()
    assert "needs the LeaderWorkerSet controller" not in lws.stderr  # -q: notes off, required steps still shown
    assert "is gated" in lws.stderr
    kserve = gpuctl("export", "k8s", "llama-3.1-8b", "--gpu", "l4", "--kserve", "-o", str(isolated / "b"))
    assert kserve.exit_code == 0, kserve.stderr
    assert sorted(p.name for p in (isolated / "b").glob("*.yaml")) == ["llminferenceservice.yaml",
                                                                        "secret-api-key.yaml"]


def test_a_deployment_exports_what_it_runs(gpuctl, isolated: Path) -> None:
    recipe = BOOK.get("qwen2.5-7b")
    ran = build_engine_spec(recipe, EngineOptions(gpu_count=2, max_model_len=4096, gpu_memory_utilization=0.85,
                                                  served_model_name="chat", public=True, api_key=True))
    record(isolated, "prod-1", engine_spec=ran, served_model_name="chat")
    result = gpuctl("export", "k8s", "prod-1", "--json")
    assert result.exit_code == 0, result.stderr
    deployment = json.loads(result.stdout)["items"][1]
    assert deployment["metadata"]["name"] == "prod-1"
    engine = engine_container(deployment)
    assert engine["args"] == ran.args
    assert engine["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert "NVIDIA-L40S" in json.dumps(deployment["spec"]["template"]["spec"]["affinity"])
    # flags override what the record says
    other = gpuctl("export", "k8s", "prod-1", "--gpu", "h100-sxm", "--context", "8192", "--json")
    args = engine_container(json.loads(other.stdout)["items"][1])["args"]
    assert args[args.index("--max-model-len") + 1] == "8192" and args[args.index("--tensor-parallel-size") + 1] == "1"


@pytest.mark.integration
def test_what_up_ran_is_what_the_export_runs(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    write_recipe(isolated)
    fake_cloud.add_offer(make_offer("fakepod", "pod.l40s", 0.5, count=2))
    flags = ("--name", "t1", "--max-model-len", "2048", "--gpu-memory-utilization", "0.8", "--quantization", "fp8")
    plan = json.loads(gpuctl("up", "tiny", *flags, "--dry-run", "--json").stdout)
    with MockProcess("--model", "tiny-served") as engine:
        fake_cloud.set(endpoint_url=engine.url)
        assert gpuctl("up", "tiny", *flags, "-y").exit_code == 0
    result = gpuctl("export", "k8s", "t1", "--json")
    assert result.exit_code == 0, result.stderr
    deployment = json.loads(result.stdout)["items"][1]
    engine_run = engine_container(deployment)
    assert engine_run["args"] == plan["engine"]["args"]
    assert engine_run["image"] == plan["engine"]["image"]
    assert engine_run["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert "predates" not in result.stderr  # the record held every engine flag


def test_an_older_record_exports_with_the_recipe_defaults_and_says_so(gpuctl, isolated: Path) -> None:
    record(isolated, "old")
    result = gpuctl("export", "k8s", "old", "--json")
    assert result.exit_code == 0, result.stderr
    assert "the record of old predates gpuctl keeping its engine flags" in result.stderr
    args = engine_container(json.loads(result.stdout)["items"][1])["args"]
    assert args[args.index("--max-model-len") + 1] == "8192"


def test_the_project_default_gpu(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("model: qwen2.5-7b\ngpu: a10g\n")
    result = gpuctl("export", "k8s", "qwen2.5-7b", "--json")
    assert result.exit_code == 0, result.stderr
    assert "NVIDIA-A10G" in result.stdout


def test_bad_input_is_one_line_with_a_hint_and_exit_code(gpuctl, isolated: Path) -> None:
    (isolated / "afile").write_text("x")
    cases = [
        (("qwen2.5-7b",), 2, "no GPU given for qwen2.5-7b (hint: pass --gpu"),
        (("nope", "--gpu", "l4"), 3, "'nope' is neither a deployment of this project nor a model"),
        (("llama-3.1-70b", "--gpu", "l4", "--count", "4"), 2, "llama-3.1-70b does not fit on 4 x L4 at 8192 tokens"),
        (("qwen2.5-7b", "--gpu", "l4", "--name", "Bad_Name"), 2, "'Bad_Name' cannot name Kubernetes objects"),
        (("qwen2.5-7b", "--gpu", "l4", "--namespace", "-x"), 2, "'-x' is not a valid namespace"),
        (("qwen2.5-7b", "--gpu", "nosuchgpu"), 2, "unknown GPU 'nosuchgpu'"),
        (("qwen2.5-7b", "--gpu", "l4", "--replicas", "0"), 2, "Invalid value for '--replicas'"),
        (("qwen2.5-7b", "--gpu", "l4", "-o", str(isolated / "afile")), 2, "cannot write the manifests to"),
    ]
    for args, code, message in cases:
        result = gpuctl("export", "k8s", *args)
        assert result.exit_code == code, (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and message in lines[0] and "(hint: " in lines[0], (args, result.stderr)
        assert result.stdout == ""
