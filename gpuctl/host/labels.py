"""The labels gpuctl puts on what it starts on a host, so that all of it can be found again by label.

Containers carry them as docker labels; the TTL watchdog, a process, carries the same ``key=value``
words in its command line. The keys match the tags of instances at a provider (:mod:`gpuctl.deploy.tags`).
"""

from __future__ import annotations

from typing import Literal

from gpuctl.deploy.tags import DEPLOYMENT, MANAGED, MANAGED_VALUE, PROJECT

#: the deployment's unique token (its idempotency token): tells apart two deployments of one name
TOKEN = "gpuctl-token"
#: what the thing is for: the engine, a weights fetcher, the TTL watchdog
ROLE = "gpuctl-role"
#: the engine container a watchdog stops (its id, never a name another deployment could take)
CONTAINER = "gpuctl-container"
Role = Literal["engine", "fetcher", "watchdog"]


def host_labels(role: Role, *, project: str | None = None, deployment: str | None = None,
                token: str | None = None) -> dict[str, str]:
    """The labels of one thing gpuctl starts on a host (unknown parts are left out)."""
    labels = {MANAGED: MANAGED_VALUE, ROLE: role}
    for key, value in ((PROJECT, project), (DEPLOYMENT, deployment), (TOKEN, token)):
        if value:
            labels[key] = value
    return labels


def project_filter(project: str) -> dict[str, str]:
    """Everything of one project on a host."""
    return {MANAGED: MANAGED_VALUE, PROJECT: project}
