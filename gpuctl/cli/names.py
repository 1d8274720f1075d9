"""NAME, when a command that takes one is given none: the project's only active deployment."""

from __future__ import annotations

from gpuctl.app import App
from gpuctl.errors import NotFoundError, UsageError


def deployment_name(app: App, name: str | None, command: str) -> str:
    """``name``, else the only active deployment of the project; none or several: an error listing them."""
    if name:
        return name
    from gpuctl.deploy.records import is_active

    active = sorted(d.name for d in app.state.read().deployments.values() if is_active(d))
    if len(active) == 1:
        return active[0]
    if not active:
        raise NotFoundError("no active deployment in this project", "'gpuctl up MODEL' starts one")
    raise UsageError(f"{len(active)} active deployments: {', '.join(active)}",
                     f"name one: 'gpuctl {command} {active[0]}'")
