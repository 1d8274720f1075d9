"""What a user names on ``gpuctl weights``: a recipe, ``hf:ORG/NAME[@REV]``, or a bare ``ORG/NAME``."""

from __future__ import annotations

from pathlib import Path

from gpuctl.models.recipe import REPO_ID


def resolve_ref(text: str, project_root: Path | None = None) -> tuple[str, str]:
    """(repo id, revision) without contacting the hub: a recipe's pinned revision, else the one named, else main."""
    from gpuctl.recipes.hub import is_hf_ref, parse_hf_ref

    if is_hf_ref(text) or REPO_ID.match(text.partition("@")[0]):
        return parse_hf_ref(text)
    from gpuctl.recipes import RecipeBook

    recipe = RecipeBook(project_root).get(text)
    return recipe.repo, recipe.revision
