"""The engine's image decides which machines an offer may be: its CPU architecture (vLLM's and TGI's
published images are amd64 only, so a Grace GH200 machine cannot run them) and its CUDA version (the
host's driver must run it). ``up``, ``prices --for`` and the wizard propose only machines the image
runs on, unless the user names an image (``--image``)."""

from __future__ import annotations

import json

import pytest

from gpuctl.engines import image_facts
from gpuctl.errors import ExitCode
from tests.standins.fixtures import lambda_api, runpod_api  # noqa: F401  (fixtures)


@pytest.fixture
def gh200_cheapest(lambda_api):  # noqa: F811
    """The Lambda stand-in's own catalog (whose gpu_1x_gh200 is the real type: "1x GH200 (96 GB)", an arm64
    Grace machine) with the A10 sold out, so that the GH200 is the cheapest type llama-3-8b fits on."""
    lambda_api.state.capacity["gpu_1x_a10"] = []
    return lambda_api


def plan(gpuctl, *args: str) -> dict:
    result = gpuctl("up", "llama-3-8b", "--provider", "lambda", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_published_images_are_amd64_only() -> None:
    assert image_facts("vllm").archs == ("x86_64",) and image_facts("tgi").archs == ("x86_64",)
    assert (image_facts("vllm").cuda, image_facts("tgi").cuda) == ("12.8", "12.4")


def test_up_does_not_pick_an_arm64_machine_for_the_vllm_image(gpuctl, gh200_cheapest) -> None:
    doc = plan(gpuctl)
    assert doc["offer"]["instance_type"] == "gpu_1x_h100_sxm5"  # not gpu_1x_gh200, $1.49/h
    assert doc["offer"]["arch"] == "x86_64"
    assert doc["engine"]["image"] == "vllm/vllm-openai:v0.11.0" and doc["engine"]["cuda_version"] == "12.8"


def test_an_image_the_user_names_may_run_on_arm64(gpuctl, gh200_cheapest) -> None:
    doc = plan(gpuctl, "--image", "example.org/vllm-openai:v0.11.0-arm64")
    assert (doc["offer"]["instance_type"], doc["offer"]["arch"]) == ("gpu_1x_gh200", "arm64")
    assert doc["engine"]["image"] == "example.org/vllm-openai:v0.11.0-arm64"
    assert doc["engine"]["cuda_version"] is None  # its CUDA is the user's to know
    assert " example.org/vllm-openai:v0.11.0-arm64 " in doc["command"]


def test_asking_for_an_arm64_gpu_says_why_nothing_is_proposed(gpuctl, gh200_cheapest) -> None:
    result = gpuctl("up", "llama-3-8b", "--provider", "lambda", "--gpu", "gh200", "--dry-run")
    assert result.exit_code == ExitCode.NO_CAPACITY
    assert ("every available offer for GH200 at lambda is an arm64 machine, and vllm's image vllm/vllm-openai:v0.11.0 "
            "is built for x86_64 only (hint: name an image built for arm64 with --image, or pick another --gpu)"
            ) in result.stderr


def test_prices_for_a_model_hides_machines_the_image_cannot_run(gpuctl, gh200_cheapest) -> None:
    listed = gpuctl("prices", "--for", "llama-3-8b", "--provider", "lambda", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert "gpu_1x_gh200" not in {o["instance_type"] for o in json.loads(listed.stdout)}
    assert ("1 offer(s) on arm64 machines not shown: vllm/vllm-openai:v0.11.0 has no arm64 build; 'gpuctl up' picks "
            "them only with --image naming one (--all shows them)") in listed.stderr


def test_prices_all_shows_them_marked(gpuctl, gh200_cheapest) -> None:
    table = gpuctl("prices", "--for", "llama-3-8b", "--provider", "lambda", "--all")
    assert table.exit_code == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if "GH200" in line]
    assert "GH200 (arm64, no image)" in row
    assert "offers marked 'no image' run on arm64 machines" in table.stderr
    # a plain listing shows the architecture, unmarked: no image was chosen
    plain = gpuctl("prices", "--provider", "lambda")
    assert "GH200 (arm64)" in plain.stdout and "no image" not in plain.stdout


def test_prices_with_an_image_lists_them_unmarked(gpuctl, gh200_cheapest) -> None:
    listed = gpuctl("prices", "--for", "llama-3-8b", "--provider", "lambda", "--image", "example.org/vllm:arm64",
                    "--json")
    assert "gpu_1x_gh200" in {o["instance_type"] for o in json.loads(listed.stdout)}
    refused = gpuctl("prices", "--image", "example.org/vllm:arm64")
    assert refused.exit_code == ExitCode.USAGE and "--image only applies with --for MODEL" in refused.stderr


def test_up_asks_runpod_for_hosts_that_run_the_images_cuda(gpuctl, runpod_api) -> None:  # noqa: F811
    result = gpuctl("up", "llama-3-8b", "--provider", "runpod", "--gpu", "rtx-4090", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    asked = [r for r in runpod_api.requests if r.path == "/v2/catalog/gpus"]
    assert asked and {r.query["minCudaVersion"][0] for r in asked} == {"12.8"}
    # the community hosts in US-CA-2 run CUDA 12.4: their stock is not the one offered
    assert json.loads(result.stdout)["offer"]["region"] != "US-CA-2"
    own = gpuctl("up", "llama-3-8b", "--provider", "runpod", "--image", "example.org/vllm:cu124", "--dry-run", "--json")
    assert own.exit_code == 0, own.stderr
    assert "minCudaVersion" not in [r for r in runpod_api.requests if r.path == "/v2/catalog/gpus"][-1].query


def test_the_wizard_offers_only_machines_the_image_runs_on() -> None:
    from datetime import datetime, timezone

    from gpuctl.models.offer import Offer
    from gpuctl.plan import PlanRequest
    from gpuctl.recipes import resolve_model
    from gpuctl.wizard import gpu_choices

    now = datetime.now(timezone.utc)
    gh200 = Offer(provider="lambda", gpu="GH200", gpu_count=1, vram_gb=96, region="us-east-3", price_per_hour=1.49,
                  price_per_gpu_hour=1.49, availability="medium", instance_type="gpu_1x_gh200", source="live",
                  as_of=now)  # no arch given: the GH200's usual machine, a Grace (arm64) one
    h100 = gh200.model_copy(update={"gpu": "H100-SXM", "vram_gb": 80, "price_per_hour": 3.29,
                                    "price_per_gpu_hour": 3.29, "instance_type": "gpu_1x_h100_sxm5"})
    recipe = resolve_model("llama-3-8b")
    request = PlanRequest(model="llama-3-8b")
    assert [c.gpu for c in gpu_choices(recipe, [gh200, h100], request, can_launch=lambda name: True)] == ["H100-SXM"]
    own = request.model_copy(update={"image": "example.org/vllm:arm64"})
    assert [c.gpu for c in gpu_choices(recipe, [gh200, h100], own, can_launch=lambda name: True)] == [
        "GH200", "H100-SXM"]
