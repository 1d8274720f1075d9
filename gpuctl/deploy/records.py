"""Every change the deploy code makes to the state file, each one a transaction under the state lock.

A record is written before each external call (launch, terminate), so a crash at any point leaves
enough behind for ``gpuctl down`` or ``gpuctl gc`` to finish the job. Every status change is checked
against the state machine (:mod:`gpuctl.deploy.states`).
"""

from __future__ import annotations

from typing import Any

from gpuctl.deploy.states import InvalidTransition, check_transition
from gpuctl.errors import NotFoundError, UsageError
from gpuctl.models.deployment import Deployment, DeploymentStatus, utcnow
from gpuctl.models.engine import HOST_PORT
from gpuctl.state import State, StateStore

#: statuses under which something may still exist (and bill) at a provider or on a host
ACTIVE = ("provisioning", "starting", "running", "failed", "terminating")


def is_active(deployment: Deployment) -> bool:
    return deployment.status in ACTIVE


class Records:
    """The deployments of one project's state file."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, name: str) -> Deployment:
        """Deployment ``name``; NotFoundError (exit 3) naming the known ones otherwise."""
        deployment = self.store.read().deployments.get(name)
        if deployment is None:
            raise not_found(name, self.store.read())
        return deployment

    def all(self) -> list[Deployment]:
        return sorted(self.store.read().deployments.values(), key=lambda d: d.created_at)

    def reserve(self, deployment: Deployment, *, allocate_port: bool) -> Deployment:
        """Write a new ``provisioning`` record; exit 2 when the name is taken by a deployment still active.

        With ``allocate_port`` the record gets the lowest host port from 8000 up that no other active
        deployment on the same host uses (decided under the lock, so two ``up`` never pick the same).
        """
        with self.store.transaction() as state:
            existing = state.deployments.get(deployment.name)
            if existing is not None and is_active(existing):
                raise UsageError(f"a deployment named '{deployment.name}' already exists (status {existing.status})",
                                 f"pick another --name, or remove it first with 'gpuctl down {deployment.name}'")
            if allocate_port:
                used = {d.host_port for d in state.deployments.values()
                        if is_active(d) and d.host == deployment.host and d.host_port}
                port = HOST_PORT
                while port in used:
                    port += 1
                deployment = deployment.model_copy(update={"host_port": port})
            state.deployments[deployment.name] = deployment
            state.record(deployment.name, "reserved", f"{deployment.provider} {deployment.offer_id or ''}".strip())
        return deployment

    def update(self, name: str, *, event: str | None = None, detail: str | None = None,
               expect_status: DeploymentStatus | None = None, **changes: Any) -> Deployment:
        """Apply ``changes`` to deployment ``name`` (and log ``event``); returns the new record.

        InvalidTransition when ``changes`` move its status somewhere the state machine does not allow,
        or, with ``expect_status`` (the caller checked the moves itself), when the record on file no
        longer has that status: another process changed it.
        """
        with self.store.transaction() as state:
            current = state.deployments.get(name)
            if current is None:
                raise not_found(name, state)
            updated = Deployment.model_validate(
                current.model_copy(update={**changes, "updated_at": utcnow()}).model_dump())
            if expect_status is None:
                check_transition(name, current.status, updated.status)
            elif current.status != expect_status:
                raise InvalidTransition(f"deployment '{name}' was changed by another process (it is {current.status},"
                                        f" not {expect_status})")
            state.deployments[name] = updated
            if event:
                state.record(name, event, detail)
            return state.deployments[name]


def not_found(name: str, state: State) -> NotFoundError:
    known = ", ".join(sorted(n for n, d in state.deployments.items() if is_active(d))) or "none"
    return NotFoundError(f"no deployment named '{name}' (active: {known})", "'gpuctl status' lists them")
