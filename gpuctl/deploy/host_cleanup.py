"""What gpuctl started on a user's host for a deployment, found and removed: by its record, or by its name alone.

``down`` removes a deployment's engine container and its TTL watchdog (and the watchdog's files);
``down NAME --host TARGET`` does the same knowing only the name (the state file lost or corrupt); ``gc``
asks every host the project's records name for what ended deployments left there.

The host side (docker, the watchdog) belongs to :mod:`gpuctl.host` and :mod:`gpuctl.deploy.watchdog`;
this module only decides what to look for. Where the host layer can find gpuctl's containers and
watchdogs by label and deployment token, :func:`find_watchdogs` and :func:`leftovers` are where it
plugs in (one call each).
"""

from __future__ import annotations

from pydantic import BaseModel

from gpuctl.deploy import naming
from gpuctl.deploy.removal import Removals
from gpuctl.errors import GpuctlError
from gpuctl.host.errors import HostError
from gpuctl.host.shell import Shell
from gpuctl.models.deployment import Deployment

# the pids whose command line runs a given watchdog script ("bash SCRIPT" or "sudo -n bash SCRIPT"); the
# pattern is spelled so that this snippet's own command line never matches it
_FIND_SCRIPT_RUNNERS = ('for d in /proc/[0-9]*; do c=$(tr "\\0" " " <"$d/cmdline" 2>/dev/null) || continue; '
                        'case "$c" in "bas""h $1 "*|*" bas""h $1 "*) echo "${d#/proc/}";; esac; done')


class HostLeftover(BaseModel):
    """Something of an ended deployment still on a host."""

    deployment: str
    container: str | None = None
    watchdog_pids: list[int] = []


#: seconds an engine that never served gets between SIGTERM and SIGKILL (one that served gets docker's 30):
#: a model still loading has no requests to finish, and an interrupted 'up' should not hang on it
UNSERVED_STOP_TIMEOUT_S = 5


def stop_timeout(deployment: Deployment) -> int:
    """How long ``deployment``'s engine gets to stop before it is killed."""
    from gpuctl.host.docker import STOP_TIMEOUT_S

    return STOP_TIMEOUT_S if deployment.ready_at is not None else UNSERVED_STOP_TIMEOUT_S


def clean_deployment(shell: Shell, deployment: Deployment, removals: Removals) -> None:
    """Remove ``deployment``'s engine container and stop its watchdog (its recorded pid, or found by name)."""
    from gpuctl.host.docker import DockerEngine

    where = shell.where
    if deployment.container:
        removed = DockerEngine(shell, sudo=deployment.docker_sudo).remove(deployment.container,
                                                                          stop_timeout=stop_timeout(deployment))
        removals.gone(f"container {deployment.container} on {where}", "removed" if removed else "already gone")
    pids = {deployment.watchdog_pid} if deployment.watchdog_pid else set()
    stop_watchdogs(shell, deployment.name, pids | set(find_watchdogs(shell, deployment.name)),
                   sudo=deployment.docker_sudo)
    if deployment.ttl_seconds or pids:
        removals.gone(f"TTL watchdog of {deployment.name} on {where}", "stopped")


def clean_by_name(shell: Shell, name: str, removals: Removals, *, sudo: bool | None = None) -> None:
    """The engine container and watchdog of deployment ``name``, with no (active) record to go by.

    ``sudo``: whether docker needs ``sudo -n`` there (None: find out).
    """
    if sudo is None:
        sudo = _docker_needs_sudo(shell)
    clean_deployment(shell, Deployment(name=name, model="?", provider="ssh", idempotency_token="?",
                                       container=naming.container_name(name), docker_sudo=sudo), removals)


def find_watchdogs(shell: Shell, name: str) -> list[int]:
    """Pids running deployment ``name``'s watchdog script, whether or not a pid reached the state file."""
    from gpuctl.deploy.watchdog import paths, private_dir

    script, _, _ = paths(private_dir(shell), name)
    found = shell.run(["sh", "-c", _FIND_SCRIPT_RUNNERS, "sh", script])
    return sorted({int(pid) for pid in found.stdout.split() if pid.isdigit()}) if found.ok else []


def stop_watchdogs(shell: Shell, name: str, pids: set[int], *, sudo: bool) -> None:
    """Stop each watchdog process of ``name`` (only pids that still run its script) and remove its files."""
    from gpuctl.deploy.watchdog import disarm

    targets: list[int | None] = [*sorted(pids)] or [None]  # None: no process, the files still go
    for pid in targets:
        disarm(shell, name=name, pid=pid, sudo=sudo)


def leftovers(shell: Shell, ended: list[Deployment]) -> list[HostLeftover]:
    """What the ``ended`` deployments (records that say they are gone) still have on this host."""
    from gpuctl.host.docker import DockerEngine

    found = []
    for deployment in ended:
        container = naming.container_name(deployment.name)
        try:
            present = DockerEngine(shell, sudo=deployment.docker_sudo).inspect(container) is not None
            pids = find_watchdogs(shell, deployment.name)
        except GpuctlError:
            continue
        if present or pids:
            found.append(HostLeftover(deployment=deployment.name, container=container if present else None,
                                      watchdog_pids=pids))
    return found


def _docker_needs_sudo(shell: Shell) -> bool:
    """Whether this login needs ``sudo -n`` for docker (asked without the record that would say so)."""
    from gpuctl.host.docker import DockerEngine

    try:
        DockerEngine(shell).info()
    except HostError:
        return True
    return False
