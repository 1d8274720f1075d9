"""Recipe files: the shipped set, the published facts, folder priority, and broken files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuctl.errors import ConfigError, ExitCode, NotFoundError, UsageError
from gpuctl.fit import estimate_parameters
from gpuctl.recipes import RecipeBook, resolve_model
from gpuctl.recipes.book import recipe_folders

REQUIRED = ["llama-3-8b", "llama-3.1-8b", "llama-3.1-70b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b",
            "qwen2.5-32b", "gemma-2-9b", "phi-3-mini"]

LLAMA_YAML = """\
name: {name}
repo: example/{name}
revision: main
gated: false
license: mit
default_context: 2048
max_context: 4096
architecture:
  parameters: 1000000
  layers: 2
  attention_heads: 4
  kv_heads: 2
  head_dim: 8
  hidden_size: 32
  intermediate_size: 64
  vocab_size: 100
  dtype: float16
"""


def write_recipe(folder: Path, name: str, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text if text is not None else LLAMA_YAML.format(name=name), encoding="utf-8")
    return path


def test_the_required_recipes_ship_with_one_quantized_model() -> None:
    recipes = {r.name: r for r in RecipeBook().all()}
    assert set(REQUIRED) <= set(recipes)
    quantized = [r for r in recipes.values() if r.architecture.quantization]
    assert {q.architecture.quantization.method for q in quantized} & {"awq", "gptq"}


@pytest.mark.parametrize("recipe", RecipeBook().all(), ids=lambda r: r.name)
def test_every_shipped_recipe_is_pinned_and_self_consistent(recipe) -> None:
    arch = recipe.architecture
    assert re.fullmatch(r"[0-9a-f]{40}", recipe.revision), "pin a commit sha"
    assert recipe.origin == "builtin"
    assert recipe.license and recipe.gated in (True, False)
    # the published parameter count must follow from the config.json facts: catches a mistyped field
    estimate = estimate_parameters(layers=arch.layers, hidden_size=arch.hidden_size,
                                   attention_heads=arch.attention_heads, kv_heads=arch.kv_heads,
                                   head_dim=arch.head_dim, intermediate_size=arch.intermediate_size,
                                   vocab_size=arch.vocab_size, tie_word_embeddings=arch.tie_word_embeddings,
                                   experts=arch.experts)
    assert abs(estimate - arch.parameters) / arch.parameters < 0.001
    assert recipe.default_context <= recipe.max_context


@pytest.mark.parametrize(("name", "facts"), [
    ("llama-3.1-70b", dict(layers=80, attention_heads=64, kv_heads=8, head_dim=128, hidden_size=8192)),
    ("llama-3-8b", dict(layers=32, attention_heads=32, kv_heads=8, head_dim=128, hidden_size=4096)),
    ("qwen2.5-7b", dict(layers=28, attention_heads=28, kv_heads=4, hidden_size=3584, vocab_size=152064)),
    ("gemma-2-9b", dict(layers=42, attention_heads=16, kv_heads=8, head_dim=256, tie_word_embeddings=True)),
    ("phi-3-mini", dict(layers=32, kv_heads=32, head_dim=96, hidden_size=3072, vocab_size=32064)),
    ("mixtral-8x7b", dict(experts=8, kv_heads=8, intermediate_size=14336)),
])
def test_published_config_facts(name: str, facts: dict) -> None:
    arch = RecipeBook().get(name).architecture
    assert {key: getattr(arch, key) for key in facts} == facts


def test_context_limits_and_gating_match_the_model_cards() -> None:
    book = RecipeBook()
    assert book.get("llama-3.1-8b").max_context == 131072
    assert book.get("llama-3-8b").max_context == 8192
    assert book.get("phi-3-mini").max_context == 4096
    assert book.get("llama-3-8b").gated is True
    assert book.get("qwen2.5-7b").gated is False
    assert book.get("qwen2.5-32b-awq").architecture.quantization.group_size == 128


def test_project_recipe_wins_over_user_recipe_which_wins_over_builtin(isolated: Path, tmp_path: Path) -> None:
    user_dir = tmp_path / "config" / "recipes"
    write_recipe(user_dir, "llama-3-8b", LLAMA_YAML.format(name="llama-3-8b").replace("license: mit", "license: u"))
    write_recipe(user_dir, "only-user")
    write_recipe(isolated / "recipes", "only-user", LLAMA_YAML.format(name="only-user").replace("mit", "proj"))
    book = RecipeBook(isolated)
    assert book.get("llama-3-8b").license == "u"
    assert book.get("llama-3-8b").origin == "user"
    assert book.get("only-user").license == "proj"
    assert book.get("only-user").origin == "project"
    assert book.get("mistral-7b").origin == "builtin"
    assert book.names() == sorted(book.names())


def test_a_checkout_of_gpuctl_does_not_list_its_shipped_recipes_as_project_recipes() -> None:
    shipped = Path(__file__).resolve().parents[2]
    folders = recipe_folders(shipped)
    assert [origin for origin, _ in folders] == ["builtin", "user"]
    assert RecipeBook(shipped).get("llama-3-8b").origin == "builtin"


def test_unknown_model_exits_3_with_close_matches() -> None:
    with pytest.raises(NotFoundError) as caught:
        RecipeBook().get("lama-3.1-8b")
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    assert "llama-3.1-8b" in caught.value.hint


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nrepo: a: b\n", "line 2 not valid YAML"),
    (LLAMA_YAML.format(name="broken").replace("kv_heads: 2", "kv_heads: two"), "field 'architecture.kv_heads'"),
    (LLAMA_YAML.format(name="broken").replace("gated: false\n", ""), "field 'gated'"),
    (LLAMA_YAML.format(name="broken") + "colour: blue\n", "field 'colour': unknown field"),
    (LLAMA_YAML.format(name="broken").replace("kv_heads: 2", "kv_heads: 3"), "kv_heads (3) must divide"),
    (LLAMA_YAML.format(name="other"), "field 'name': 'other' does not match the file name 'broken'"),
    ("- a list\n", "expected a mapping"),
])
def test_a_broken_recipe_names_file_and_field(isolated: Path, text: str, expected: str) -> None:
    path = write_recipe(isolated / "recipes", "broken", text)
    with pytest.raises(ConfigError) as caught:
        RecipeBook(isolated).get("broken")
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_listing_stops_at_a_broken_recipe_but_one_lookup_does_not(isolated: Path) -> None:
    write_recipe(isolated / "recipes", "broken", "gated: [\n")
    assert RecipeBook(isolated).get("llama-3-8b").name == "llama-3-8b"
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        RecipeBook(isolated).all()


def test_hf_config_only_applies_to_hf_models(isolated: Path) -> None:
    with pytest.raises(UsageError, match="--hf-config only applies"):
        resolve_model("llama-3-8b", isolated, hf_config="config.json")
