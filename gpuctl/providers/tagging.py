"""Tags a provider adds to the deployment's own, for clouds with no client token or TTL of their own.

RunPod and Lambda accept no idempotency token and cannot expire an instance, so gpuctl writes both
onto the instance: a repeated launch finds its earlier instance by the token, and any gpuctl holding
the API key can see from the provider alone that an instance has outlived its deadline.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuctl.models.instance import LaunchRequest

#: the launch's idempotency token; a launch carrying the same token returns the instance that has it
LAUNCH_TOKEN = "gpuctl-launch-token"
#: Unix seconds after which the instance should no longer exist (set when the launch has a TTL)
EXPIRES_AT = "gpuctl-expires-at"


def launch_tags(request: LaunchRequest, now: float | None = None) -> dict[str, str]:
    """``request.tags`` plus the launch token and, with a TTL, the deadline."""
    tags = {**request.tags, LAUNCH_TOKEN: request.idempotency_token}
    if request.ttl_seconds:
        tags[EXPIRES_AT] = str(int(time.time() if now is None else now) + request.ttl_seconds)
    return tags


def carries(tags: dict[str, str], wanted: dict[str, str]) -> bool:
    """Whether ``tags`` holds every key of ``wanted`` with the same value."""
    return all(tags.get(key) == value for key, value in wanted.items())


def deadline(tags: dict[str, str]) -> int | None:
    """The deadline written by ``launch_tags`` (None when absent or unreadable)."""
    value = tags.get(EXPIRES_AT, "")
    return int(value) if value.isdigit() else None
