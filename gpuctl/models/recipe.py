"""A model recipe: which weights to serve and the architecture facts the memory math needs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Dtype = Literal["float16", "bfloat16", "float32"]
#: the engines gpuctl deploys; vLLM is the default (TGI is archived upstream but still served)
EngineName = Literal["vllm", "sglang", "tgi"]
#: gpuctl's own names for quantization methods; each engine maps them to its flag values
QuantMethod = Literal["awq", "gptq", "fp8", "eetq", "bitsandbytes"]
RecipeOrigin = Literal["builtin", "user", "project", "hf"]

RECIPE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class Quantization(BaseModel):
    """How the linear-layer weights are stored; embeddings and the LM head stay at the model dtype."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: QuantMethod
    bits: int = Field(ge=2, le=8)
    group_size: int | None = Field(default=None, description="weights per scale; None = per channel")

    @property
    def bytes_per_weight(self) -> float:
        """Storage per quantized weight, counting one fp16 scale and one packed zero point per group."""
        per_group = (2 + self.bits / 8) / self.group_size if self.group_size else 0.0
        return self.bits / 8 + per_group


class Architecture(BaseModel):
    """The published config.json facts of a model (field names say which config key they mirror)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: int = Field(gt=0, description="total parameter count (all experts)")
    layers: int = Field(gt=0, description="num_hidden_layers")
    attention_heads: int = Field(gt=0, description="num_attention_heads")
    kv_heads: int = Field(gt=0, description="num_key_value_heads")
    head_dim: int = Field(gt=0, description="head_dim, else hidden_size / num_attention_heads")
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    experts: int = Field(default=1, ge=1, description="num_local_experts (mixture of experts)")
    experts_per_token: int | None = Field(default=None, ge=1, description="num_experts_per_tok: experts each "
                                          "token runs through (None: all of them)")
    dtype: Dtype = Field(description="torch_dtype of the published weights")
    quantization: Quantization | None = None
    sliding_window: int | None = None

    @model_validator(mode="after")
    def _heads_consistent(self) -> Architecture:
        if self.attention_heads % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide attention_heads ({self.attention_heads})")
        return self

    @property
    def embedding_parameters(self) -> int:
        """Input embeddings plus the LM head (one matrix when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)


class EngineDefaults(BaseModel):
    """What a recipe adds to one engine's command line; the builder owns every other flag."""

    model_config = ConfigDict(extra="forbid")

    supported: bool = True
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)


def _every_engine() -> dict[EngineName, EngineDefaults]:
    return {"vllm": EngineDefaults(), "tgi": EngineDefaults()}


class Recipe(BaseModel):
    """One servable model. ``gpuctl models show NAME --json`` prints this document."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    repo: str = Field(description="Hugging Face repo id, ORG/NAME")
    revision: str = Field(description="pinned commit sha (or a branch name for ad-hoc models)")
    gated: bool | None = Field(description="the repo needs an accepted licence and HF_TOKEN (None: unknown)")
    license: str
    architecture: Architecture
    default_context: int = Field(gt=0)
    max_context: int = Field(gt=0, description="max_position_embeddings (or the published extended limit)")
    engines: dict[EngineName, EngineDefaults] = Field(default_factory=_every_engine)
    origin: RecipeOrigin = Field(default="builtin", description="which recipe folder won (set by the loader)")
    source: str | None = Field(default=None, description="the file (or hub URL) the recipe was read from")

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not (RECIPE_NAME.match(value) or (value.startswith("hf:") and REPO_ID.match(value[3:]))):
            raise ValueError("use lowercase letters, digits, '.', '-' and '_'")
        return value

    @field_validator("repo")
    @classmethod
    def _repo_is_id(cls, value: str) -> str:
        if not REPO_ID.match(value):
            raise ValueError("expected a Hugging Face repo id such as ORG/NAME")
        return value

    @model_validator(mode="after")
    def _context_in_range(self) -> Recipe:
        if self.default_context > self.max_context:
            raise ValueError(f"default_context ({self.default_context}) exceeds max_context ({self.max_context})")
        return self

    @property
    def pinned(self) -> bool:
        """Whether ``revision`` is a full commit sha rather than a moving branch."""
        return bool(re.fullmatch(r"[0-9a-f]{40}", self.revision))

    def engine_defaults(self, engine: EngineName) -> EngineDefaults:
        return self.engines.get(engine, EngineDefaults())


class RecipeRow(BaseModel):
    """One row of ``gpuctl models``."""

    name: str
    repo: str
    parameters_b: float = Field(description="billions of parameters")
    default_context: int
    max_context: int
    quantization: str | None
    gated: bool | None
    origin: RecipeOrigin

    @classmethod
    def of(cls, recipe: Recipe) -> RecipeRow:
        quant = recipe.architecture.quantization
        return cls(name=recipe.name, repo=recipe.repo,
                   parameters_b=round(recipe.architecture.parameters / 1e9, 2),
                   default_context=recipe.default_context, max_context=recipe.max_context,
                   quantization=quant.method if quant else None, gated=recipe.gated,
                   origin=recipe.origin)
