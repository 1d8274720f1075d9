"""Ad-hoc models, ``hf:ORG/NAME[@REVISION]``: a recipe built from the repo's config.json.

The config comes from a local file (``--hf-config PATH``) or from the Hugging Face hub over plain
HTTPS (``{HF_ENDPOINT}/ORG/NAME/resolve/REVISION/config.json``, with ``HF_TOKEN`` as bearer token),
through the same client as the weights preflight (:mod:`gpuctl.weights.hub`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from gpuctl.envvars import Env
from gpuctl.errors import ConfigError, ProviderError, UsageError
from gpuctl.fit import estimate_parameters
from gpuctl.models.recipe import REPO_ID, Architecture, Dtype, Quantization, Recipe

PREFIX = "hf:"
#: read by huggingface_hub too; lets users (and tests) point at a mirror
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
#: the context an ad-hoc model is planned for unless --context / --max-model-len says otherwise
DEFAULT_CONTEXT = 8192

_QUANT_DEFAULT_BITS = {"awq": 4, "gptq": 4, "fp8": 8}


def is_hf_ref(ref: str) -> bool:
    return ref.startswith(PREFIX)


def parse_hf_ref(ref: str) -> tuple[str, str]:
    """``hf:ORG/NAME[@REV]`` -> (repo id, revision)."""
    body = ref[len(PREFIX):] if is_hf_ref(ref) else ref
    repo, _, revision = body.partition("@")
    if not REPO_ID.match(repo):
        raise UsageError(f"'{ref}' is not a Hugging Face model reference", "use hf:ORG/NAME or hf:ORG/NAME@REVISION")
    return repo, revision or DEFAULT_REVISION


def config_url(repo: str, revision: str, endpoint: str | None = None) -> str:
    base = (endpoint or os.environ.get(Env.HF_ENDPOINT) or DEFAULT_ENDPOINT).rstrip("/")
    return f"{base}/{repo}/resolve/{revision}/config.json"


def fetch_hf_config(repo: str, revision: str, token: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """The config.json of ``repo`` at ``revision`` from the hub; errors say what to do next.

    The hub's answer is read as preflight reads it (:func:`gpuctl.weights.hub.hub_get`): its
    ``X-Error-Code`` tells a mistyped repo (3) from a gated one (6), a rejected token is said to be
    one (6), and rate limits and outages are waited out within bounds.
    """
    from gpuctl.weights.hub import HubUnreachable, hub_get

    url = config_url(repo, revision, endpoint)
    try:
        response = hub_get(url, repo=repo, revision=revision, token=token, entry="config.json")
    except HubUnreachable as exc:
        raise ProviderError(exc.message, "pass the model's config.json with --hf-config PATH") from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise ProviderError(f"the config.json of {repo} is not JSON") from exc
    if not isinstance(data, dict):
        raise ProviderError(f"the config.json of {repo} is not a JSON object")
    return data


def read_local_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    file = Path(path).expanduser()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {file} ({exc.strerror})", "pass the path of a model's config.json") from exc
    except ValueError as exc:
        raise ConfigError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a JSON object")
    return data


def _quantization(config: dict[str, Any], source: str) -> Quantization | None:
    raw = config.get("quantization_config")
    if not raw:
        return None
    method = str(raw.get("quant_method", "")).lower()
    if method not in _QUANT_DEFAULT_BITS:
        raise ConfigError(f"{source}: field 'quantization_config.quant_method': '{method}' is not supported",
                          f"gpuctl plans {', '.join(_QUANT_DEFAULT_BITS)} checkpoints")
    bits = int(raw.get("bits", raw.get("w_bit", _QUANT_DEFAULT_BITS[method])))
    group = raw.get("group_size", raw.get("q_group_size"))
    return Quantization(method=method, bits=bits, group_size=group if group and group > 0 else None)  # type: ignore[arg-type]


def architecture_from_config(config: dict[str, Any], source: str) -> tuple[Architecture, int]:
    """The architecture facts and maximum context in a transformers config.json."""
    config = config.get("text_config", config)  # multimodal repos nest the language model's config

    def need(key: str) -> int:
        value = config.get(key)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{source}: field '{key}' is missing or not a positive integer",
                              "gpuctl needs a decoder-only transformers config.json")
        return value

    layers, heads, hidden = need("num_hidden_layers"), need("num_attention_heads"), need("hidden_size")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    experts = config.get("num_local_experts") or config.get("num_experts") or 1
    experts_per_token = config.get("num_experts_per_tok") if experts > 1 else None
    intermediate, vocab = need("intermediate_size"), need("vocab_size")
    tied = bool(config.get("tie_word_embeddings", False))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    # engines serve float32 checkpoints at 16 bits; the memory math follows what is served
    dtype = "bfloat16" if dtype == "float32" else dtype
    try:
        arch = Architecture(
            parameters=estimate_parameters(layers=layers, hidden_size=hidden, attention_heads=heads,
                                           kv_heads=kv_heads, head_dim=head_dim, intermediate_size=intermediate,
                                           vocab_size=vocab, tie_word_embeddings=tied, experts=experts),
            layers=layers, attention_heads=heads, kv_heads=kv_heads, head_dim=head_dim, hidden_size=hidden,
            intermediate_size=intermediate, vocab_size=vocab, tie_word_embeddings=tied, experts=experts,
            experts_per_token=experts_per_token, dtype=cast(Dtype, dtype), quantization=_quantization(config, source),
            sliding_window=config.get("sliding_window"),
        )
    except ValidationError as exc:
        from gpuctl.project import describe_validation_error

        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from exc
    return arch, need("max_position_embeddings")


def recipe_from_hf(ref: str, config_path: str | os.PathLike[str] | None = None, token: str | None = None) -> Recipe:
    """A recipe for ``hf:ORG/NAME[@REV]`` from a local config.json, or from the hub when none is given."""
    repo, revision = parse_hf_ref(ref)
    if config_path is not None:
        config, source = read_local_config(config_path), str(Path(config_path).expanduser())
    else:
        config, source = fetch_hf_config(repo, revision, token), config_url(repo, revision)
    arch, max_context = architecture_from_config(config, source)
    return Recipe(
        name=f"{PREFIX}{repo}", description=f"{repo} (ad hoc, parameters estimated from config.json)",
        repo=repo, revision=revision, gated=None, license="unknown", architecture=arch,
        default_context=min(DEFAULT_CONTEXT, max_context), max_context=max_context, origin="hf", source=source,
    )
