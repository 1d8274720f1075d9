"""``gpuctl models`` and ``gpuctl models show``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_recipes import LLAMA_YAML, write_recipe
from tests.unit.test_recipes_hub import QWEN_05B


def test_models_lists_every_recipe_as_json(gpuctl) -> None:
    result = gpuctl("models", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert len(rows) >= 10
    assert rows["llama-3-8b"] == {
        "name": "llama-3-8b", "repo": "meta-llama/Meta-Llama-3-8B-Instruct", "parameters_b": 8.03,
        "default_context": 8192, "max_context": 8192, "quantization": None, "gated": True, "origin": "builtin",
    }
    assert rows["qwen2.5-32b-awq"]["quantization"] == "awq"
    assert rows["phi-3-mini"]["gated"] is False


def test_models_table(gpuctl) -> None:
    result = gpuctl("models")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PARAMS", "CONTEXT", "MAX", "QUANT", "GATED", "FROM"]
    assert any(line.split() == ["llama-3.1-70b", "70.55B", "8192", "131072", "-", "yes", "builtin"] for line in lines)


def test_show_prints_one_recipe_with_its_memory_figures(gpuctl) -> None:
    result = gpuctl("models", "show", "llama-3.1-70b", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["repo"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert doc["revision"] == "1605565b47bb9346c5515c34102e054115b4f98b"
    assert doc["architecture"]["layers"] == 80
    assert doc["memory"] == {"weights_gb": 141.11, "kv_bytes_per_token": 327680,
                             "kv_cache_gb_per_sequence": 2.684, "default_context": 8192}
    human = gpuctl("models", "show", "llama-3.1-70b")
    assert "repo: meta-llama/Llama-3.1-70B-Instruct" in human.stdout.splitlines()


def test_unknown_model_exits_3_with_close_matches(gpuctl) -> None:
    result = gpuctl("models", "show", "mistral-7")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "unknown model 'mistral-7'" in result.stderr and "did you mean mistral-7b" in result.stderr


def test_broken_recipe_exits_2_naming_file_and_field(gpuctl, isolated: Path) -> None:
    path = write_recipe(isolated / "recipes", "mine", LLAMA_YAML.format(name="mine").replace("layers: 2", "layers: -1"))
    for args in (("models",), ("models", "show", "mine")):
        result = gpuctl(*args)
        assert result.exit_code == 2
        assert str(path) in result.stderr
        assert "field 'architecture.layers'" in result.stderr


def test_user_and_project_recipes_are_listed_with_their_origin(gpuctl, isolated: Path, tmp_path: Path) -> None:
    write_recipe(tmp_path / "config" / "recipes", "tiny-user")
    write_recipe(isolated / "recipes", "llama-3-8b")  # the project's own llama-3-8b wins
    rows = {row["name"]: row for row in json.loads(gpuctl("models", "--json").stdout)}
    assert rows["tiny-user"]["origin"] == "user"
    assert rows["llama-3-8b"]["origin"] == "project"
    assert rows["llama-3-8b"]["repo"] == "example/llama-3-8b"


def test_show_an_ad_hoc_hf_model_from_a_local_config(gpuctl, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN_05B), encoding="utf-8")
    result = gpuctl("models", "show", "hf:Qwen/Qwen2.5-0.5B-Instruct", "--hf-config", str(config), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["origin"], doc["gated"], doc["max_context"]) == ("hf", None, 32768)
    assert doc["memory"]["kv_bytes_per_token"] == 2 * 24 * 2 * 64 * 2
