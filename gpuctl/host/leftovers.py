"""What gpuctl left on a host, found by label, and its removal: for ``gpuctl down`` and for ``gpuctl gc``.

Three kinds: containers (engine, weights fetchers) by their docker labels, TTL watchdogs by the labels
in their command lines (:mod:`gpuctl.host.watchdogs`), and gpuctl's private files in ``~/.gpuctl``:
watchdog directories (``watchdog.PROJECT.TOKEN``) and, from gpuctl versions before secrets went
through stdin, the env and job files an interrupted run could leave (``engine.env-*``,
``weights-fetcher.py-*``, ``weights-job.json-*``). Those hold secrets of no particular project: every
sweep reports and removes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from gpuctl.errors import GpuctlError
from gpuctl.host import labels, watchdogs
from gpuctl.host.docker import DockerEngine, docker_access
from gpuctl.host.shell import Shell

#: files an older gpuctl wrote in ~/.gpuctl and removed at once, unless it was killed in between
LEGACY_SECRET_FILES = ("engine.env-*", "weights-fetcher.py-*", "weights-job.json-*")
# the patterns come as arguments and are expanded here, unquoted (they hold no space)
_LIST_FILES = ('cd "$HOME/' + watchdogs.PRIVATE_DIR + '" 2>/dev/null || exit 0; '
               'for f in watchdog.* $*; do [ -e "$f" ] && printf "%s/%s\\n" "$PWD" "$f"; done; exit 0')


class HostItem(BaseModel):
    """One thing gpuctl left on a host."""

    kind: Literal["container", "watchdog", "file"]
    ref: str = Field(description="container id, watchdog process group, or absolute path")
    name: str = Field(description="container name, watchdog script, or file name")
    role: str | None = None
    project: str | None = None
    deployment: str | None = None
    token: str | None = None
    detail: str = ""


class HostLeftovers(BaseModel):
    """Everything of one project on one host, and what could not be looked at."""

    where: str
    items: list[HostItem] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)

    def without_tokens(self, live: Iterable[str]) -> HostLeftovers:
        """The items that belong to none of the ``live`` deployment tokens (what a sweep may remove)."""
        keep = set(live)
        return self.model_copy(update={"items": [i for i in self.items if i.token is None or i.token not in keep]})


def find_leftovers_on_host(shell: Shell, project: str, *, docker: DockerEngine | None = None) -> HostLeftovers:
    """Containers, watchdogs and private files of ``project`` on the host (plus legacy secret files).

    ``docker`` is the host's engine when the caller has it (else found as the login user or ``sudo -n``).
    A part that cannot be looked at (docker down) is named in ``problems`` instead of failing the rest.
    """
    found = HostLeftovers(where=shell.where)
    try:
        engine = docker or docker_access(shell)
        for state in engine.containers(labels.project_filter(project)):
            found.items.append(HostItem(
                kind="container", ref=state.id, name=state.name, role=state.labels.get(labels.ROLE),
                project=project, deployment=state.labels.get(labels.DEPLOYMENT),
                token=state.labels.get(labels.TOKEN), detail=state.status))
    except GpuctlError as exc:
        found.problems.append(f"containers: {exc.message}")
    running = watchdogs.find_watchdogs(shell, project=project)
    for dog in running:
        found.items.append(HostItem(kind="watchdog", ref=str(dog.pgid), name=dog.script, role="watchdog",
                                    project=project, deployment=dog.deployment, token=dog.token,
                                    detail=f"pid {dog.pid}, stops {dog.container}"))
    listing = shell.run(["sh", "-c", _LIST_FILES, "sh", *LEGACY_SECRET_FILES]).check(
        "listing ~/.gpuctl", shell.where).stdout
    for path in listing.splitlines():
        name = path.rsplit("/", 1)[-1]
        parsed = watchdogs.parse_directory_name(name)
        if parsed is not None:
            owner, token = parsed
            if owner == project:
                found.items.append(HostItem(kind="file", ref=path, name=name, role="watchdog", project=project,
                                            token=token, detail="the TTL watchdog's files"))
        elif not name.startswith("watchdog"):
            found.items.append(HostItem(kind="file", ref=path, name=name,
                                        detail="secret file left by an interrupted older gpuctl"))
    return found


def remove_leftovers(shell: Shell, items: Iterable[HostItem], *, docker: DockerEngine | None = None,
                     sudo: bool | None = None) -> list[HostItem]:
    """Remove ``items`` (containers first, then watchdogs, then files); returns those removed.

    ``sudo`` (for stopping watchdogs that run as root) defaults to whether docker needs it.
    """
    items = list(items)
    removed: list[HostItem] = []
    containers = [i for i in items if i.kind == "container"]
    if containers:
        engine = docker or docker_access(shell)
        sudo = engine.sudo if sudo is None else sudo
        for item in containers:
            engine.remove(item.ref, stop_timeout=2 if item.role == "fetcher" else 10)
            removed.append(item)
    dogs = [i for i in items if i.kind == "watchdog"]
    if dogs:
        running = {str(w.pgid): w for w in watchdogs.find_watchdogs(shell)}
        watchdogs.stop(shell, [running[i.ref] for i in dogs if i.ref in running], sudo=bool(sudo))
        removed += dogs
    files = [i for i in items if i.kind == "file"]
    if files:
        shell.run(["rm", "-rf", "--", *(i.ref for i in files)]).check("removing gpuctl's files", shell.where)
        removed += files
    return removed


def remove_deployment(shell: Shell, *, project: str | None, name: str, token: str | None,
                      container: str | None = None, docker: DockerEngine | None = None,
                      watchdog_pid: int | None = None) -> list[str]:
    """Everything of one deployment off the host (``gpuctl down``): its engine and fetcher containers (by
    token, and ``container`` by name for records from before labels), its watchdog and its files.

    Without a token (the record is lost: ``down NAME --host``) the containers labelled with deployment
    ``name`` (of ``project``, when given) go, plus ``container`` by name. Returns what was removed, one
    line each. With a token, never touches a later deployment of the same name.
    """
    engine = docker or docker_access(shell)
    gone: list[str] = []
    if token:
        refs = [s.id for s in engine.containers({labels.TOKEN: token})]
    else:
        named = {labels.MANAGED: labels.MANAGED_VALUE, labels.DEPLOYMENT: name}
        refs = [s.id for s in engine.containers({**named, **({labels.PROJECT: project} if project else {})})]
    if container and container not in refs:
        state = engine.inspect(container)
        if state is not None and (token is None or state.labels.get(labels.TOKEN) in (None, token)):
            refs.append(state.id)
    for ref in dict.fromkeys(refs):
        state = engine.inspect(ref)
        if state is not None and engine.remove(ref, stop_timeout=10):
            gone.append(f"container {state.name} ({state.labels.get(labels.ROLE, 'engine')})")
    stopped = watchdogs.disarm(shell, name=name, pid=watchdog_pid, sudo=engine.sudo, token=token, project=project)
    gone += [f"TTL watchdog (pid {w.pid})" for w in stopped]
    return gone
