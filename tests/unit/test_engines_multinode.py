"""vLLM's own multi-node mode: the arguments each node runs (``gpuctl.engines.vllm.node_args``).

The flags are those of ``vllm serve`` from v0.11.1 on (vllm/engine/arg_utils.py: ``--nnodes``/``-n``,
``--node-rank``/``-r``, ``--master-addr``, ``--master-port``; vllm/entrypoints/cli/serve.py:
``--headless`` runs a node without the API server); docs/serving/parallelism_scaling.md of the vLLM
repository shows the same command lines for two nodes.
"""

from __future__ import annotations

import pytest

from gpuctl.engines import build_engine_spec, vllm
from gpuctl.errors import ConfigError
from gpuctl.models.engine import EngineOptions
from gpuctl.models.recipe import EngineDefaults
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()


def single_node_args() -> list[str]:
    return build_engine_spec(BOOK.get("llama-3.1-70b"), EngineOptions(gpu_count=8)).args


def test_rank_0_serves_the_api_and_the_others_join_headless() -> None:
    args = single_node_args()
    leader = vllm.node_args(args, nodes=2, node_rank=0, master_addr="10.0.0.5")
    worker = vllm.node_args(args, nodes=2, node_rank=1, master_addr="10.0.0.5")
    assert leader == [*args, "--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank", "0",
                      "--master-addr", "10.0.0.5"]
    assert worker == [*args, "--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank", "1",
                      "--master-addr", "10.0.0.5", "--headless"]
    # tensor parallel inside a node, as the single-node command had it
    assert args[args.index("--tensor-parallel-size") + 1] == "8"


def test_rank_and_address_may_be_placeholders_and_the_port_is_optional() -> None:
    worker = vllm.node_args(["m"], nodes=4, node_rank="$(RANK)", master_addr="$(LEADER)", master_port=29501)
    assert worker == ["m", "--pipeline-parallel-size", "4", "--nnodes", "4", "--node-rank", "$(RANK)",
                      "--master-addr", "$(LEADER)", "--master-port", "29501", "--headless"]


def test_one_node_is_not_multi_node() -> None:
    with pytest.raises(ValueError):
        vllm.node_args(["m"], nodes=1, node_rank=0, master_addr="x")


def test_the_multi_node_image_is_a_release_with_the_flags() -> None:
    # v0.11.0 (IMAGE) has no --nnodes; v0.11.1 is the first that has
    assert vllm.IMAGE == "vllm/vllm-openai:v0.11.0"
    assert vllm.MULTI_NODE_IMAGE == "vllm/vllm-openai:v0.11.1"


@pytest.mark.parametrize("arg", ["--nnodes=2", "--headless", "--master-addr", "--pipeline-parallel-size"])
def test_a_recipe_cannot_set_the_multi_node_flags(arg: str) -> None:
    recipe = BOOK.get("llama-3-8b").model_copy(update={"engines": {"vllm": EngineDefaults(args=[arg])}})
    with pytest.raises(ConfigError, match="is set by gpuctl"):
        build_engine_spec(recipe, EngineOptions())
