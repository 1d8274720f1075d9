"""Ad-hoc hf:ORG/NAME models: config.json parsing, and the hub download against the stand-in hub."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.errors import ConfigError, CredentialsError, ExitCode, NotFoundError, ProviderError, UsageError
from gpuctl.recipes import RecipeBook, resolve_model
from gpuctl.recipes.hub import architecture_from_config, fetch_hf_config, parse_hf_ref, recipe_from_hf
from gpuctl.weights import hub as hub_client
from tests.standins.hub_server import GOOD_TOKEN, HubRepo, HubServer

QWEN_05B = {  # Qwen/Qwen2.5-0.5B-Instruct config.json (the fields gpuctl reads)
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
    "max_position_embeddings": 32768, "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 151936,
}


def llama_config(**changes: object) -> dict:
    base = {"hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 8192,
            "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
            "torch_dtype": "bfloat16", "vocab_size": 128256, "tie_word_embeddings": False}
    return {**base, **changes}


def test_a_config_json_gives_the_same_facts_as_the_shipped_recipe() -> None:
    arch, max_context = architecture_from_config(llama_config(), "config.json")
    shipped = RecipeBook().get("llama-3-8b").architecture
    assert arch.model_dump(exclude={"parameters"}) == shipped.model_dump(exclude={"parameters"})
    assert abs(arch.parameters - shipped.parameters) < 0.0001 * shipped.parameters
    assert max_context == 8192


def test_defaults_for_kv_heads_head_dim_and_float32() -> None:
    config = llama_config(torch_dtype="float32")
    del config["num_key_value_heads"]
    arch, _ = architecture_from_config(config, "c")
    assert (arch.kv_heads, arch.head_dim, arch.dtype) == (32, 128, "bfloat16")


def test_awq_and_nested_text_config_are_read() -> None:
    config = {"text_config": llama_config(quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})}
    arch, _ = architecture_from_config(config, "c")
    assert arch.quantization is not None
    assert (arch.quantization.method, arch.quantization.bits, arch.quantization.group_size) == ("awq", 4, 128)


@pytest.mark.parametrize(("config", "expected"), [
    (llama_config(num_hidden_layers=None), "field 'num_hidden_layers' is missing"),
    (llama_config(quantization_config={"quant_method": "hqq"}), "'hqq' is not supported"),
    (llama_config(num_key_value_heads=5), "kv_heads (5) must divide"),
])
def test_unusable_configs_name_the_field(config: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        architecture_from_config(config, "/tmp/x/config.json")
    assert expected in caught.value.message
    assert "/tmp/x/config.json" in caught.value.message


@pytest.mark.parametrize(("ref", "expected"), [
    ("hf:Qwen/Qwen2.5-0.5B-Instruct", ("Qwen/Qwen2.5-0.5B-Instruct", "main")),
    ("hf:org/name@0123abc", ("org/name", "0123abc")),
])
def test_parse_hf_ref(ref: str, expected: tuple[str, str]) -> None:
    assert parse_hf_ref(ref) == expected


def test_a_bad_hf_ref_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_hf_ref("hf:just-a-name")


def test_local_config_path_builds_an_ad_hoc_recipe(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN_05B), encoding="utf-8")
    recipe = resolve_model("hf:Qwen/Qwen2.5-0.5B-Instruct", hf_config=str(path))
    assert recipe.name == "hf:Qwen/Qwen2.5-0.5B-Instruct"
    assert (recipe.origin, recipe.revision, recipe.gated, recipe.source) == ("hf", "main", None, str(path))
    assert (recipe.default_context, recipe.max_context) == (8192, 32768)
    # Qwen2.5-0.5B has 494M parameters (model card); the estimate leaves out norms and biases
    assert abs(recipe.architecture.parameters - 494_032_768) / 494_032_768 < 0.002


def test_a_missing_local_config_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        recipe_from_hf("hf:a/b", tmp_path / "nope.json")


def config_repo(repo: str, config: dict | bytes, *, gated: bool = False, commit: str = "") -> HubRepo:
    body = config if isinstance(config, bytes) else json.dumps(config).encode()
    return HubRepo(repo=repo, files={"config.json": body}, gated=gated, commit=commit)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The stand-in hub, answering as huggingface.co does (X-Error-Code on errors); retries do not sleep."""
    monkeypatch.setattr(hub_client, "pause", lambda seconds: None)
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_hub_config_is_fetched_from_hf_endpoint(hub: HubServer) -> None:
    hub.add(config_repo("Qwen/Qwen2.5-0.5B-Instruct", QWEN_05B))
    recipe = resolve_model("hf:Qwen/Qwen2.5-0.5B-Instruct")
    assert recipe.architecture.layers == 24
    assert recipe.source == f"{hub.url}/Qwen/Qwen2.5-0.5B-Instruct/resolve/main/config.json"
    assert [(h.path, h.authorized) for h in hub.log] == [("/Qwen/Qwen2.5-0.5B-Instruct/resolve/main/config.json",
                                                         False)]


def test_hf_token_is_sent_as_bearer_for_gated_repos(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add(config_repo("meta-llama/Llama-3.2-1B", llama_config(num_hidden_layers=16), gated=True, commit="abc123"))
    with pytest.raises(CredentialsError) as caught:
        resolve_model("hf:meta-llama/Llama-3.2-1B@abc123")
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert "HF_TOKEN" in caught.value.hint
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(CredentialsError, match="no access"):
        resolve_model("hf:meta-llama/Llama-3.2-1B@abc123")
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    assert resolve_model("hf:meta-llama/Llama-3.2-1B@abc123").architecture.layers == 16
    assert (hub.log[-1].path, hub.log[-1].authorized) == ("/meta-llama/Llama-3.2-1B/resolve/abc123/config.json", True)


def test_hub_errors_map_to_exit_codes(hub: HubServer) -> None:
    with pytest.raises(NotFoundError):
        fetch_hf_config("org/missing", "main")
    hub.add(config_repo("org/broken", b"<html>"))
    with pytest.raises(ProviderError, match="not JSON"):
        fetch_hf_config("org/broken", "main")
    hub.add(config_repo("org/down", {}))
    hub.fail(503, times=100, on="/org/down/")
    with pytest.raises(ProviderError, match="HTTP 503"):
        fetch_hf_config("org/down", "main")


def test_an_unreachable_hub_suggests_a_local_config() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderError) as caught:
        fetch_hf_config("org/name", "main", endpoint=f"http://127.0.0.1:{port}")
    assert "--hf-config" in caught.value.hint
