"""The deployment state machine: which status may follow which, checked on every write of a record.

    provisioning -> starting -> running          (the way up)
    any active   -> failed                       (a step failed, or was interrupted)
    any active   -> terminating -> terminated    (the one teardown)

A write that breaks the table is a bug (or a second process changing the deployment behind the lock's
back): it raises instead of leaving a record that says ``running`` after ``terminated``.
"""

from __future__ import annotations

from gpuctl.errors import GpuctlError
from gpuctl.models.deployment import DeploymentStatus

TRANSITIONS: dict[DeploymentStatus, frozenset[DeploymentStatus]] = {
    "provisioning": frozenset({"starting", "failed", "terminating"}),
    "starting": frozenset({"running", "failed", "terminating"}),
    "running": frozenset({"failed", "terminating"}),
    "failed": frozenset({"terminating"}),
    "terminating": frozenset({"terminated", "failed"}),
    "terminated": frozenset(),
}


class InvalidTransition(GpuctlError):
    """A record was about to move to a status the table does not allow from its current one (a bug: exit 1)."""

    default_hint = "this is a bug in gpuctl: report it with GPUCTL_DEBUG=1 output; 'gpuctl down NAME' cleans up"


def check_transition(name: str, current: DeploymentStatus, new: DeploymentStatus) -> None:
    """Raise InvalidTransition unless ``new`` may follow ``current`` (staying put is always allowed)."""
    if new != current and new not in TRANSITIONS[current]:
        raise InvalidTransition(f"deployment '{name}' cannot go from {current} to {new}")
