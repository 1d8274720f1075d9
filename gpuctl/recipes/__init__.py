"""Model recipes: gpuctl's own, the user's, the project's, and ad-hoc ``hf:ORG/NAME`` models."""

from __future__ import annotations

import os
from pathlib import Path

from gpuctl.models.recipe import Recipe
from gpuctl.recipes.book import RecipeBook, load_recipe_file
from gpuctl.recipes.hub import is_hf_ref, recipe_from_hf

__all__ = ["RecipeBook", "load_recipe_file", "resolve_model"]


def resolve_model(ref: str, project_root: Path | None = None,
                  hf_config: str | os.PathLike[str] | None = None) -> Recipe:
    """The recipe a user means by ``ref``: a recipe name, or ``hf:ORG/NAME[@REV]``."""
    if is_hf_ref(ref):
        from gpuctl.credentials import credential_value

        return recipe_from_hf(ref, hf_config, token=None if hf_config else credential_value("hf.token"))
    if hf_config is not None:
        from gpuctl.errors import UsageError

        raise UsageError("--hf-config only applies to hf:ORG/NAME models", f"drop --hf-config or use hf:... for {ref}")
    return RecipeBook(project_root).get(ref)
