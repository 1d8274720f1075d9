"""Which files of a repo an engine needs: safetensors weights (by their index), config, tokenizer.

Only files at the top of the repo count (``original/consolidated.pth`` and other subfolders are
other formats of the same weights). When an index lists the shards, only those are fetched:
Mistral-style repos also carry a ``consolidated.safetensors`` with the same weights again.
Pickled weights (``.bin``, ``.pt``, ``.pth``, ``.ckpt``) can run code when loaded: a repo without
safetensors is refused unless the user allows pickle.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable

from gpuctl.errors import NotFoundError, ProviderError, UsageError
from gpuctl.weights.models import HubFile, Manifest, RepoInfo, WeightFormat

SAFETENSORS = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: what engines read besides the weights (transformers' config, tokenizer and generation files)
SUPPORT_PATTERNS = (
    "config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json", "added_tokens.json",
    "vocab.*", "merges.txt", "*.tiktoken", "chat_template.*", "preprocessor_config.json", "processor_config.json",
)
#: pickles in a repo that hold no weights (trainer state); they do not make a repo "pickle-only"
_NOT_WEIGHTS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state*.pth")

IndexReader = Callable[[str], bytes]


def build_manifest(info: RepoInfo, revision: str, *, allow_pickle: bool, read_index: IndexReader) -> Manifest:
    """The files to cache for ``info``; ``read_index(name)`` returns the content of a weight index file.

    Raises UsageError (exit 2) for a repo whose only weights are pickled unless ``allow_pickle``,
    NotFoundError (3) for a repo without weights or config.json.
    """
    top = {f.name: f for f in info.files if "/" not in f.name}
    where = f"{info.repo}@{info.commit[:12]}"
    if "config.json" not in top:
        raise NotFoundError(f"{where} has no config.json", "gpuctl serves transformers-format checkpoints")
    weight_format, weights = _weights(top, where, allow_pickle, read_index)
    support = [f for name, f in top.items() if any(fnmatch.fnmatchcase(name, p) for p in SUPPORT_PATTERNS)]
    chosen = sorted({f.name: f for f in [*weights, *support]}.values(), key=lambda f: f.name)
    return Manifest(repo=info.repo, revision=revision, commit=info.commit, format=weight_format, gated=info.gated,
                    files=[f.entry() for f in chosen])


def _weights(top: dict[str, HubFile], where: str, allow_pickle: bool,
             read_index: IndexReader) -> tuple[WeightFormat, list[HubFile]]:
    safetensors = [f for n, f in top.items() if n.endswith(SAFETENSORS)]
    if safetensors:
        return "safetensors", _by_index(top, safetensors, f"{SAFETENSORS}.index.json", where, read_index)
    pickles = [f for n, f in top.items() if n.endswith(PICKLE_SUFFIXES)
               and not any(fnmatch.fnmatchcase(n, p) for p in _NOT_WEIGHTS)]
    if not pickles:
        formats = sorted({n.rsplit(".", 1)[-1] for n in top if n.endswith((".gguf", ".onnx", ".h5", ".msgpack"))})
        found = f" (it has {', '.join(formats)} files)" if formats else ""
        raise NotFoundError(f"{where} has no safetensors weights{found}",
                            "gpuctl serves safetensors checkpoints; pick a repo or revision that has them")
    if not allow_pickle:
        names = ", ".join(sorted(f.name for f in pickles)[:3]) + (" ..." if len(pickles) > 3 else "")
        raise UsageError(f"{where} has only pickled weights ({names}): loading a pickle can run arbitrary code",
                         "use a repo or revision with safetensors weights, or pass --allow-pickle if you trust "
                         "this repo")
    return "pickle", _by_index(top, pickles, ".bin.index.json", where, read_index)


def _by_index(top: dict[str, HubFile], weights: list[HubFile], suffix: str, where: str,
              read_index: IndexReader) -> list[HubFile]:
    """The shards an index names (and the index), or every weight file when there is no index."""
    indexes = [f for n, f in top.items() if n.endswith(suffix)]
    if not indexes:
        return weights
    shards: set[str] = set()
    for index in indexes:
        try:
            weight_map = json.loads(read_index(index.name))["weight_map"]
            shards.update(str(v) for v in weight_map.values())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"{where}: {index.name} is not a weight index ({type(exc).__name__})") from exc
    missing = sorted(shards - set(top))
    if missing:
        raise ProviderError(f"{where}: {indexes[0].name} names shards the repo lacks: {', '.join(missing[:3])}")
    return [*indexes, *(top[name] for name in sorted(shards))]
