"""The watchdog on a host (templates/watchdog.sh): it stops the engine when the TTL runs out, when the
budget is spent (price x uptime) or after the idle limit without a request, whether or not gpuctl is
still running. On the user's own machine it stops only the container; on a rented machine it also
shuts the machine down.

It is keyed to one deployment, never to a name a later deployment could reuse: it stops the engine
container by its id, its files live in a directory of the deployment's token
(``~/.gpuctl/watchdog.PROJECT.TOKEN/``: the script, the deadline file, re-read at every tick so
extending a TTL is one write, and its log), and its command line carries the deployment's labels, so
``gpuctl down`` and ``gpuctl gc`` find it on the host even when its pid never reached the state file
(:mod:`gpuctl.host.watchdogs`, which also disarms it). It runs in its own session, so it ends with
its ``sleep`` by process group.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

from gpuctl.host import labels, watchdogs
from gpuctl.host.errors import HostError
from gpuctl.host.shell import Shell
from gpuctl.host.watchdogs import directory_name, disarm, paths, private_dir

__all__ = ["Armed", "IdleLimit", "activity_path", "arm", "disarm", "host_seconds", "interval_for"]

STOP_MACHINE = "sudo -n shutdown -h now || shutdown -h now"
KEEP_MACHINE = "true"
MAX_INTERVAL_S = 30
_START = 'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $!'


class Armed(BaseModel):
    pid: int
    #: when the TTL stops it (None: no TTL)
    expires_at: datetime | None
    #: what keys the watchdog: the deployment's token, else the container's id
    token: str
    #: when the budget runs out (None: no budget)
    budget_ends_at: datetime | None = None
    #: where it notes the engine's last request (None: no idle limit)
    activity_file: str | None = None


class IdleLimit(BaseModel):
    """End the deployment after ``seconds`` without a request to ``engine`` (vllm, sglang, tgi) on host ``port``."""

    seconds: int
    engine: str
    port: int


def interval_for(*limits_seconds: int | None) -> int:
    """Tick often enough that the shortest limit is honoured closely (a tenth of it, 1 to 30 s)."""
    shortest = min((s for s in limits_seconds if s), default=MAX_INTERVAL_S * 10)
    return max(1, min(MAX_INTERVAL_S, shortest // 10))


def activity_path(directory: str, name: str) -> str:
    """The file where the watchdog writes when it last saw the engine busy (Unix seconds)."""
    return f"{directory}/{name}.activity"


def arm(shell: Shell, *, name: str, container: str, seconds_left: int | None, stop_machine: bool, sudo: bool = False,
        token: str | None = None, project: str | None = None, budget_seconds_left: int | None = None,
        idle: IdleLimit | None = None) -> Armed:
    """Start the watchdog for ``container`` (a name or id), due ``seconds_left`` from now by the host's clock
    (None: no TTL), or ``budget_seconds_left`` from now (when price x uptime reaches the budget), or after
    ``idle`` without a request, whichever comes first.

    The watchdog stops the container by its id, so it never stops a later container of the same name.
    ``token`` (the deployment's idempotency token) and ``project`` label it; without a token the
    container's id keys it.
    """
    from gpuctl.host.docker import DockerEngine
    from gpuctl.metrics.engines import activity_names
    from gpuctl.templating import IdleWatch, watchdog_script

    with DockerEngine(shell, sudo=sudo) as docker:
        state = docker.inspect(container)
    if state is None:
        raise HostError(f"no container '{container}' on {shell.where} for the TTL watchdog to stop")
    container = state.id
    key = token or container[:12]
    directory = f"{private_dir(shell)}/{directory_name(project, key)}"
    script_path, deadline_path, log_path = paths(directory, name)
    local_before = datetime.now(timezone.utc)
    host_now = host_seconds(shell.run(["date", "+%s.%N"]).check("date", shell.where).stdout.strip())
    # whole seconds on the host, rounded up: a limit is never shorter than asked
    deadline = math.ceil(host_now + max(0, seconds_left)) if seconds_left is not None else 0
    budget_deadline = math.ceil(host_now + max(0, budget_seconds_left)) if budget_seconds_left is not None else 0
    watch = IdleWatch()
    if idle is not None:
        busy, requests = activity_names(idle.engine)
        watch = IdleWatch(seconds=idle.seconds, port=idle.port, busy_metrics=tuple(busy),
                          request_metrics=tuple(requests), activity_file=activity_path(directory, name))
    script = watchdog_script(deadline=deadline, container=container, deadline_file=deadline_path,
                             interval_s=interval_for(seconds_left, budget_seconds_left, idle.seconds if idle else None),
                             shutdown_command=STOP_MACHINE if stop_machine else KEEP_MACHINE,
                             budget_deadline=budget_deadline, idle=watch)
    shell.run(["sh", "-c", 'umask 077 && mkdir -p "$1"', "sh", directory]).check(f"creating {directory}", shell.where)
    files = [(script_path, script)] + ([(deadline_path, f"{deadline}\n")] if seconds_left is not None else [])
    for path, body in files:
        shell.run(["sh", "-c", 'umask 077 && cat > "$1"', "sh", path], input=body.encode()).check(
            f"writing {path}", shell.where)
    label_set = {**labels.host_labels("watchdog", project=project, deployment=name, token=key),
                 labels.CONTAINER: container}
    runner = ["sudo", "-n", "bash"] if sudo else ["bash"]
    started = shell.run(["env", f"LOG={log_path}", "sh", "-c", _START, "sh", *runner,
                         *watchdogs.watchdog_argv(script_path, label_set)]).check(
        "starting the TTL watchdog", shell.where)
    try:
        pid = int(started.stdout.split()[-1])
    except (IndexError, ValueError):
        raise HostError(f"the TTL watchdog on {shell.where} did not start: {started.stdout!r}") from None

    # the host's deadlines in this machine's clock, taken from before the host was asked: never later than
    # the real stop, so 'status' never shows time left on a stopped engine
    def local(host_deadline: int) -> datetime | None:
        return local_before + timedelta(seconds=host_deadline - host_now) if host_deadline else None

    return Armed(pid=pid, expires_at=local(deadline), token=key, budget_ends_at=local(budget_deadline),
                 activity_file=watch.activity_file if idle is not None else None)


def host_seconds(date_output: str) -> float:
    """The host's clock from ``date +%s.%N``; where ``%N`` is unsupported (busybox prints it literally),
    the end of the reported second, so the deadline errs late and ``expires_at`` early."""
    whole, _, fraction = date_output.partition(".")
    if fraction.isdigit():
        return float(f"{whole}.{fraction}")
    return int(whole) + 1.0
