"""vLLM and TGI container specs: flags, secrets, and the combinations that must be refused."""

from __future__ import annotations

import re

import pytest

from gpuctl.engines import build_engine_spec, engine_module
from gpuctl.errors import ConfigError, ExitCode, UsageError
from gpuctl.models.engine import EngineOptions
from gpuctl.models.recipe import EngineDefaults
from gpuctl.recipes import RecipeBook

BOOK = RecipeBook()


def flag(args: list[str], name: str) -> str | None:
    """The value after ``name`` in ``args`` (None when absent)."""
    return args[args.index(name) + 1] if name in args else None


def test_vllm_spec_for_llama_70b_on_four_gpus() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    spec = build_engine_spec(recipe, EngineOptions(engine="vllm", gpu_count=4, max_model_len=16384))
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", spec.image)
    assert spec.entrypoint == ["vllm", "serve"]
    assert spec.args[0] == "meta-llama/Llama-3.1-70B-Instruct"
    args = spec.args
    assert flag(args, "--revision") == flag(args, "--tokenizer-revision") == recipe.revision
    assert flag(args, "--tensor-parallel-size") == "4"
    assert flag(args, "--max-model-len") == "16384"
    assert flag(args, "--gpu-memory-utilization") == "0.9"
    assert flag(args, "--load-format") == "safetensors"
    assert flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--served-model-name") == recipe.repo
    assert "--quantization" not in args
    assert (spec.port, spec.health_path, spec.gpus, spec.tensor_parallel_size) == (8000, "/health", 4, 4)
    assert spec.safetensors_only and spec.shm_size.endswith("g")
    assert spec.secret_env == [] and spec.api_key_env is None


def test_tgi_spec_shards_and_budgets_tokens() -> None:
    recipe = BOOK.get("mixtral-8x7b")
    spec = build_engine_spec(recipe, EngineOptions(engine="tgi", gpu_count=2, gpu_memory_utilization=0.85))
    args = spec.args
    assert spec.image == "ghcr.io/huggingface/text-generation-inference:3.3.6"
    assert spec.entrypoint is None
    assert flag(args, "--model-id") == recipe.repo and flag(args, "--revision") == recipe.revision
    assert flag(args, "--num-shard") == "2"
    assert (flag(args, "--max-input-tokens"), flag(args, "--max-total-tokens")) == ("8191", "8192")
    assert flag(args, "--cuda-memory-fraction") == "0.85"
    assert flag(args, "--dtype") == "bfloat16"
    assert (spec.port, spec.health_path, spec.cache_mount, spec.shm_size) == (80, "/health", "/data", "1g")
    assert spec.served_model_name == recipe.repo


def test_prequantized_checkpoints_let_the_engine_pick_its_kernel() -> None:
    recipe = BOOK.get("qwen2.5-32b-awq")
    vllm = build_engine_spec(recipe, EngineOptions(engine="vllm", quantization="awq"))
    tgi = build_engine_spec(recipe, EngineOptions(engine="tgi"))
    assert "--quantization" not in vllm.args and vllm.quantization == "awq"
    assert flag(vllm.args, "--dtype") == "float16"
    # TGI refuses --dtype together with quantization
    assert "--quantize" not in tgi.args and "--dtype" not in tgi.args


@pytest.mark.parametrize(("engine", "method", "flag_name", "value"), [
    ("vllm", "fp8", "--quantization", "fp8"),
    ("tgi", "fp8", "--quantize", "fp8"),
    ("tgi", "eetq", "--quantize", "eetq"),
])
def test_quantizing_while_loading(engine: str, method: str, flag_name: str, value: str) -> None:
    spec = build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine=engine, quantization=method))
    assert flag(spec.args, flag_name) == value
    assert spec.quantization == method
    if engine == "tgi":
        assert "--dtype" not in spec.args


def test_secrets_are_names_in_the_spec_and_never_in_arguments() -> None:
    options = EngineOptions(public=True, api_key=True, hf_token=True)
    vllm = build_engine_spec(BOOK.get("llama-3-8b"), options)
    tgi = build_engine_spec(BOOK.get("llama-3-8b"), options.model_copy(update={"engine": "tgi"}))
    assert vllm.secret_env == ["HF_TOKEN", "VLLM_API_KEY"] and vllm.api_key_env == "VLLM_API_KEY"
    assert tgi.secret_env == ["HF_TOKEN", "API_KEY"] and tgi.api_key_env == "API_KEY"
    for spec in (vllm, tgi):
        assert "--api-key" not in spec.args
        assert not set(spec.secret_env) & set(spec.env)
        argv = spec.docker_run_argv()
        assert flag(argv, "--env-file") == "/etc/gpuctl/engine.env"
        assert flag(argv, "--publish") == f"0.0.0.0:8000:{spec.port}"
        assert not any("HF_TOKEN" in arg or "API_KEY" in arg for arg in argv)


def test_a_private_endpoint_binds_loopback_and_needs_no_env_file() -> None:
    spec = build_engine_spec(BOOK.get("phi-3-mini"), EngineOptions())
    argv = spec.docker_run_argv(name="x", cache_dir="/c", host_port=9000)
    assert argv[:4] == ["docker", "run", "--detach", "--name"]
    assert flag(argv, "--publish") == "127.0.0.1:9000:8000"
    assert flag(argv, "--volume") == "/c:/root/.cache/huggingface"
    assert "--env-file" not in argv
    assert flag(argv, "--entrypoint") == "vllm"
    image_at = argv.index(spec.image)
    assert argv[image_at + 1:] == ["serve", *spec.args]
    assert spec.command_line(name="x", cache_dir="/c", host_port=9000).startswith("docker run --detach --name x")


@pytest.mark.parametrize(("model", "options", "message"), [
    ("qwen2.5-7b", EngineOptions(gpu_count=8), "8 GPUs do not divide 28 attention heads"),
    ("llama-3-8b", EngineOptions(max_model_len=16384), "above the maximum of llama-3-8b"),
    ("llama-3-8b", EngineOptions(quantization="awq"), "needs a checkpoint quantized ahead of time"),
    ("llama-3-8b", EngineOptions(quantization="eetq"), "vllm cannot quantize to eetq while loading"),
    ("qwen2.5-7b-awq", EngineOptions(quantization="gptq"), "already awq-quantized"),
    ("llama-3-8b", EngineOptions(engine="tgi", served_model_name="chat"), "tgi cannot rename the served model"),
    ("llama-3-8b", EngineOptions(public=True), "a public endpoint needs an API key"),
    ("llama-3-8b", EngineOptions(engine="tgi", max_model_len=1), "at least 2 tokens"),
])
def test_impossible_combinations_exit_2_with_the_reason(model: str, options: EngineOptions, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        build_engine_spec(BOOK.get(model), options)
    assert caught.value.exit_code == ExitCode.USAGE
    assert message in caught.value.message


def test_an_engine_without_auth_cannot_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module("tgi"), "SUPPORTS_API_KEY", False)
    with pytest.raises(UsageError, match="no API-key authentication"):
        build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine="tgi", public=True, api_key=True))
    private = build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine="tgi"))
    assert private.supports_api_key is False and private.bind_address == "127.0.0.1"


def test_recipe_engine_args_are_appended_but_cannot_override_gpuctl_flags() -> None:
    recipe = BOOK.get("llama-3-8b")
    extra = recipe.model_copy(update={"engines": {"vllm": EngineDefaults(args=["--enable-prefix-caching"],
                                                                          env={"VLLM_LOGGING_LEVEL": "DEBUG"})}})
    spec = build_engine_spec(extra, EngineOptions())
    assert spec.args[-1] == "--enable-prefix-caching"
    assert spec.env["VLLM_LOGGING_LEVEL"] == "DEBUG"
    for bad in (EngineDefaults(args=["--tensor-parallel-size=2"]), EngineDefaults(env={"HF_TOKEN": "x"})):
        broken = recipe.model_copy(update={"engines": {"vllm": bad}})
        with pytest.raises(ConfigError, match=r"field 'engines\.vllm"):
            build_engine_spec(broken, EngineOptions())


def test_a_recipe_can_rule_an_engine_out() -> None:
    recipe = BOOK.get("llama-3-8b")
    ruled_out = recipe.model_copy(update={"engines": {"tgi": EngineDefaults(supported=False)}})
    with pytest.raises(UsageError, match="cannot be served with tgi"):
        build_engine_spec(ruled_out, EngineOptions(engine="tgi"))


def test_recipe_utilization_is_the_default_and_the_option_wins() -> None:
    recipe = BOOK.get("llama-3-8b")
    tuned = recipe.model_copy(update={"engines": {"vllm": EngineDefaults(gpu_memory_utilization=0.8)}})
    assert build_engine_spec(tuned, EngineOptions()).gpu_memory_utilization == 0.8
    assert build_engine_spec(tuned, EngineOptions(gpu_memory_utilization=0.95)).gpu_memory_utilization == 0.95


def test_sglang_spec_for_llama_70b_on_four_gpus() -> None:
    recipe = BOOK.get("llama-3.1-70b")
    spec = build_engine_spec(recipe, EngineOptions(engine="sglang", gpu_count=4, max_model_len=16384))
    assert re.fullmatch(r"lmsysorg/sglang:v\d+\.\d+\.\d+-cu12\d", spec.image)
    assert spec.entrypoint == ["python3", "-m", "sglang.launch_server"]
    args = spec.args
    assert flag(args, "--model-path") == recipe.repo and flag(args, "--revision") == recipe.revision
    assert flag(args, "--tp-size") == "4"
    assert flag(args, "--context-length") == "16384"
    assert flag(args, "--mem-fraction-static") == "0.85", "SGLang's own share: weights and KV cache only"
    assert flag(args, "--load-format") == "safetensors"
    assert flag(args, "--dtype") == "bfloat16"
    assert flag(args, "--served-model-name") == recipe.repo
    assert "--enable-metrics" in args and "--quantization" not in args
    assert (spec.port, spec.health_path, spec.gpus, spec.tensor_parallel_size) == (30000, "/health", 4, 4)
    assert spec.safetensors_only and spec.cache_mount == "/root/.cache/huggingface"
    assert spec.secret_env == [] and spec.secret_flags == {} and spec.api_key_env is None


def test_sglang_takes_its_key_as_a_flag_passed_inside_the_process() -> None:
    spec = build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine="sglang", public=True, api_key=True,
                                                                    hf_token=True))
    assert spec.secret_flags == {"--api-key": "SGLANG_API_KEY"} and spec.api_key_env == "SGLANG_API_KEY"
    assert spec.secret_env == ["HF_TOKEN"], "the key is not in the engine's environment"
    assert "--api-key" not in spec.args and spec.supports_api_key


def test_sglang_quantizes_fp8_while_loading_and_loads_pickles_only_when_allowed() -> None:
    from gpuctl.engines import allow_pickle_weights

    spec = build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine="sglang", quantization="fp8"))
    assert flag(spec.args, "--quantization") == "fp8" and spec.quantization == "fp8"
    awq = build_engine_spec(BOOK.get("qwen2.5-7b-awq"), EngineOptions(engine="sglang"))
    assert "--quantization" not in awq.args and awq.quantization == "awq"
    with pytest.raises(UsageError, match="sglang cannot quantize to eetq while loading"):
        build_engine_spec(BOOK.get("llama-3-8b"), EngineOptions(engine="sglang", quantization="eetq"))
    pickled = allow_pickle_weights(spec)
    assert flag(pickled.args, "--load-format") == "pt" and not pickled.safetensors_only


def test_sglang_refuses_flags_gpuctl_sets() -> None:
    recipe = BOOK.get("llama-3-8b")
    broken = recipe.model_copy(update={"engines": {"sglang": EngineDefaults(args=["--tp-size=2"])}})
    with pytest.raises(ConfigError, match=r"field 'engines\.sglang.args': --tp-size is set by gpuctl"):
        build_engine_spec(broken, EngineOptions(engine="sglang"))
    extra = recipe.model_copy(update={"engines": {"sglang": EngineDefaults(args=["--enable-torch-compile"])}})
    assert build_engine_spec(extra, EngineOptions(engine="sglang")).args[-1] == "--enable-torch-compile"


def test_tgi_is_archived_and_says_so() -> None:
    from gpuctl.engines import engine_notice

    assert engine_notice("vllm") is None and engine_notice("sglang") is None
    notice = engine_notice("tgi")
    assert notice is not None and "archived" in notice and "2026-03-21" in notice and "2025-12-11" in notice
