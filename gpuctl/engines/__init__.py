"""Engine container specs (vLLM, SGLang, TGI) from a recipe and the user's options.

The checks every engine shares live here; each engine module only knows its own flags.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import get_args

from gpuctl.errors import ConfigError, UsageError
from gpuctl.fit import check_context, default_utilization, effective_architecture, tensor_parallel_problem
from gpuctl.models.engine import EngineOptions, EngineSpec
from gpuctl.models.offer import HostArch
from gpuctl.models.recipe import Architecture, EngineDefaults, EngineName, Recipe

#: the engines gpuctl deploys (vLLM is the default); ``EngineName`` lists the same names
ENGINES = get_args(EngineName)
HF_TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class Resolved:
    """The options after defaults and checks: what an engine module turns into flags."""

    recipe: Recipe
    options: EngineOptions
    arch: Architecture
    defaults: EngineDefaults
    context: int
    utilization: float
    served_model_name: str
    #: the engine's flag value for quantizing while loading; None when there is nothing to pass
    quantize_flag: str | None


def engine_module(name: str) -> ModuleType:
    if name not in ENGINES:
        raise UsageError(f"unknown engine '{name}'", f"use one of {', '.join(ENGINES)}")
    return importlib.import_module(f"gpuctl.engines.{name}")


def engine_notice(name: str) -> str | None:
    """What a user choosing engine ``name`` should know (TGI: archived upstream), or None."""
    notice = getattr(engine_module(name), "NOTICE", None)
    return str(notice) if notice else None


def build_engine_spec(recipe: Recipe, options: EngineOptions) -> EngineSpec:
    """The container spec serving ``recipe`` with ``options``; impossible combinations exit 2 with the reason."""
    engine = engine_module(options.engine)
    resolved = resolve(recipe, options, engine)
    spec = engine.build(resolved)
    # a key the engine takes as a flag (SGLang) reaches it that way, not through its environment
    in_env = engine.API_KEY_ENV not in spec.secret_flags.values()
    return spec.model_copy(update={"secret_env": secret_env(options, engine.API_KEY_ENV if in_env else None),
                                   "api_key_env": engine.API_KEY_ENV if options.api_key else None,
                                   "cuda_version": engine.IMAGE_CUDA})


@dataclass(frozen=True)
class ImageFacts:
    """What an engine's own image needs of a machine: a CPU architecture it is built for, and a driver that
    runs its CUDA version."""

    image: str
    archs: tuple[HostArch, ...]
    cuda: str


def image_facts(name: str) -> ImageFacts:
    """The facts of engine ``name``'s published image (see each engine module's IMAGE_ARCHS and IMAGE_CUDA)."""
    engine = engine_module(name)
    return ImageFacts(image=engine.IMAGE, archs=tuple(engine.IMAGE_ARCHS), cuda=engine.IMAGE_CUDA)


def resolve(recipe: Recipe, options: EngineOptions, engine: ModuleType) -> Resolved:
    name = options.engine
    defaults = recipe.engine_defaults(name)
    if not defaults.supported:
        raise UsageError(f"{recipe.name} cannot be served with {name}", "use another --engine")
    context = options.max_model_len or recipe.default_context
    check_context(recipe, context)
    arch = effective_architecture(recipe, options.quantization)
    problem = tensor_parallel_problem(arch, options.gpu_count)
    if problem:
        raise UsageError(f"{recipe.name} cannot be split over {options.gpu_count} GPUs: {problem}",
                         "pick an instance with a GPU count that divides the attention heads ('gpuctl fit')")
    quantize_flag = _quantize_flag(recipe, arch, engine, name)
    if options.public and not engine.SUPPORTS_API_KEY:
        raise UsageError(f"{name} has no API-key authentication; its endpoint cannot be public",
                         "use --private (reach it through an SSH tunnel) or another --engine")
    if options.public and not options.api_key:
        raise UsageError("a public endpoint needs an API key", "use --private, or let gpuctl generate a key")
    if options.served_model_name and not engine.SUPPORTS_SERVED_MODEL_NAME:
        raise UsageError(f"{name} cannot rename the served model; it answers as {recipe.repo}",
                         "drop --served-model-name or use --engine vllm")
    _check_recipe_args(recipe, defaults, engine)
    utilization = options.gpu_memory_utilization or defaults.gpu_memory_utilization or default_utilization(name)
    return Resolved(recipe=recipe, options=options, arch=arch, defaults=defaults, context=context,
                    utilization=utilization, served_model_name=options.served_model_name or recipe.repo,
                    quantize_flag=quantize_flag)


def _quantize_flag(recipe: Recipe, arch: Architecture, engine: ModuleType, name: str) -> str | None:
    if arch.quantization is None:
        return None
    method = arch.quantization.method
    if recipe.architecture.quantization is not None:
        # pre-quantized checkpoint: the engine reads the method from config.json and picks its fastest kernel
        if method not in engine.PREQUANTIZED:
            raise UsageError(f"{name} cannot serve {method} checkpoints", "use another --engine")
        return None
    if method not in engine.ON_THE_FLY:
        supported = ", ".join(engine.ON_THE_FLY) or "none"
        raise UsageError(f"{name} cannot quantize to {method} while loading (it can: {supported})",
                         "pick another --quantization or --engine")
    return engine.ON_THE_FLY[method]


def _check_recipe_args(recipe: Recipe, defaults: EngineDefaults, engine: ModuleType) -> None:
    for arg in defaults.args:
        flag = arg.split("=", 1)[0]
        if flag in engine.OWNED_FLAGS:
            raise ConfigError(f"recipe {recipe.source or recipe.name}: field 'engines.{engine.NAME}.args': "
                              f"{flag} is set by gpuctl", "use the matching gpuctl up option instead")
    reserved = {HF_TOKEN_ENV, engine.API_KEY_ENV} & set(defaults.env)
    if reserved:
        raise ConfigError(f"recipe {recipe.source or recipe.name}: field 'engines.{engine.NAME}.env': "
                          f"{', '.join(sorted(reserved))} is a secret gpuctl passes itself")


def allow_pickle_weights(spec: EngineSpec) -> EngineSpec:
    """The spec loading pickled (.bin/.pt) weights too; only for repos the user allowed (--allow-pickle)."""
    args = engine_module(spec.engine).pickle_args(spec.args)
    return spec.model_copy(update={"args": args, "safetensors_only": False})


def secret_env(options: EngineOptions, api_key_env: str | None) -> list[str]:
    """Names of the secrets the container reads from the env-file (``api_key_env`` None: the key is a flag)."""
    names = [HF_TOKEN_ENV] if options.hf_token else []
    return [*names, api_key_env] if options.api_key and api_key_env else names
