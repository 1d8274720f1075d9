"""Finding recipes: the project's ``recipes/`` folder wins over the user's, which wins over gpuctl's own."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from gpuctl.errors import ConfigError, NotFoundError
from gpuctl.fsutil import read_text_file
from gpuctl.models.recipe import Recipe, RecipeOrigin
from gpuctl.paths import config_dir
from gpuctl.resources import data_dir
from gpuctl.yamlio import load_yaml

RECIPES_FOLDER = "recipes"
SUFFIX = ".yaml"


@dataclass(frozen=True)
class RecipeFile:
    name: str
    origin: RecipeOrigin
    path: Path


def recipe_folders(project_root: Path | None) -> list[tuple[RecipeOrigin, Path]]:
    """Where recipes are looked up, highest priority first; one folder is never listed twice."""
    candidates: list[tuple[RecipeOrigin, Path]] = []
    if project_root is not None:
        candidates.append(("project", project_root / RECIPES_FOLDER))
    candidates.append(("user", config_dir() / RECIPES_FOLDER))
    candidates.append(("builtin", Path(str(data_dir(RECIPES_FOLDER)))))
    seen: dict[Path, RecipeOrigin] = {}
    for origin, folder in candidates:
        # a checkout of gpuctl itself is also a project whose recipes/ is the shipped folder
        resolved = folder.resolve()
        if resolved in seen:
            seen[resolved] = "builtin" if origin == "builtin" else seen[resolved]
            continue
        seen[resolved] = origin
    return [(origin, folder) for folder, origin in seen.items()]


def load_recipe_file(path: Path, origin: RecipeOrigin) -> Recipe:
    """Parse and validate one recipe file; any problem is a ConfigError naming the file and field."""
    import yaml

    try:
        data = load_yaml(read_text_file(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"recipe {path}:{where} not valid YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path}: expected a mapping of fields, got {type(data).__name__}")
    stem = path.name[: -len(SUFFIX)]
    name = data.setdefault("name", stem)
    if name != stem:
        raise ConfigError(f"recipe {path}: field 'name': '{name}' does not match the file name '{stem}'",
                          f"rename the file to {name}{SUFFIX} or fix the name")
    data["origin"], data["source"] = origin, str(path)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        from gpuctl.project import describe_validation_error

        raise ConfigError(f"recipe {path}: {describe_validation_error(exc)}") from exc


class RecipeBook:
    """Every recipe visible from one project, loaded lazily (only the files asked for are parsed)."""

    def __init__(self, project_root: Path | None = None) -> None:
        self.project_root = project_root

    @cached_property
    def files(self) -> dict[str, RecipeFile]:
        """The winning file for each recipe name, sorted by name."""
        found: dict[str, RecipeFile] = {}
        for origin, folder in recipe_folders(self.project_root):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                name = path.name[: -len(SUFFIX)]
                found.setdefault(name, RecipeFile(name, origin, path))
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        return list(self.files)

    def get(self, name: str) -> Recipe:
        """The recipe called ``name``; exit 3 with close matches when there is none."""
        entry = self.files.get(name) or self.files.get(name.lower())
        if entry is None:
            close = difflib.get_close_matches(name.lower(), self.files, n=3, cutoff=0.5)
            hint = (f"did you mean {', '.join(close)}?" if close
                    else "'gpuctl models' lists the recipes; use hf:ORG/NAME for any other model")
            raise NotFoundError(f"unknown model '{name}'", hint)
        return load_recipe_file(entry.path, entry.origin)

    def all(self) -> list[Recipe]:
        """Every recipe, by name; one broken file stops the listing with its name and field."""
        return [load_recipe_file(entry.path, entry.origin) for entry in self.files.values()]
