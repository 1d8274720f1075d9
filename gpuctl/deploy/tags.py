"""The tags gpuctl puts on everything it creates, so that nothing is ever billed without a pointer to it."""

from __future__ import annotations

#: present on every instance gpuctl launches (value MANAGED_VALUE)
MANAGED = "gpuctl"
MANAGED_VALUE = "managed"
PROJECT = "gpuctl-project"
DEPLOYMENT = "gpuctl-deployment"


def deployment_tags(project: str, name: str) -> dict[str, str]:
    """The tags of one deployment's instance."""
    return {MANAGED: MANAGED_VALUE, PROJECT: project, DEPLOYMENT: name}


def cache_tags(project: str) -> dict[str, str]:
    """The tags of a weights cache: gpuctl's, and the project that created it (caches are shared by deployments)."""
    return {MANAGED: MANAGED_VALUE, PROJECT: project}


def managed() -> dict[str, str]:
    """The filter matching everything gpuctl launched, from any project."""
    return {MANAGED: MANAGED_VALUE}
