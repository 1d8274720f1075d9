"""What gpuctl started on a user's host for a deployment, removed: by its record, or by its name alone.

``down`` (and a failed ``up``) removes a deployment's engine and weights-fetcher containers, its TTL
watchdog and the watchdog's files, all found on the host by the deployment's token label, so neither
a pid nor a container name has to have reached the state file; ``down NAME --host TARGET`` does the
same knowing only the name (the state file lost or corrupt). The host side is
:func:`gpuctl.host.leftovers.remove_deployment`; ``gc``'s sweep of the project's hosts is in
:mod:`gpuctl.deploy.reconcile`. This module only decides what to ask it for.
"""

from __future__ import annotations

from gpuctl.deploy import naming
from gpuctl.deploy.removal import Removals
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment


def clean_deployment(shell: Shell, deployment: Deployment, removals: Removals) -> None:
    """Remove what ``deployment`` started on the host: by its token, plus its recorded container by name."""
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.leftovers import remove_deployment

    with DockerEngine(shell, sudo=deployment.docker_sudo) as docker:
        gone = remove_deployment(shell, project=deployment.project_id, name=deployment.name,
                                 token=deployment.idempotency_token, container=deployment.container,
                                 docker=docker, watchdog_pid=deployment.watchdog_pid)
    _note(removals, gone, deployment.name, shell.where)


def clean_by_name(shell: Shell, name: str, removals: Removals, *, project: str | None) -> None:
    """What gpuctl started on the host for deployment ``name``, with no (active) record to go by.

    ``project``: the project's id, so another project's deployment of the same name is left alone
    (None when this project's id is lost too: then anything of that name).
    """
    from gpuctl.host.leftovers import remove_deployment

    gone = remove_deployment(shell, project=project, name=name, token=None, container=naming.container_name(name))
    _note(removals, gone, name, shell.where)


def _note(removals: Removals, gone: list[str], name: str, where: str) -> None:
    for line in gone:
        removals.gone(f"{line} on {where}")
    if not gone:
        removals.gone(f"what gpuctl started for {name} on {where}", "already gone")
