"""The TTL watchdog on a host (templates/watchdog.sh): it stops the engine when the TTL runs out,
whether or not gpuctl is still running. On the user's own machine it stops only the container; on a
rented machine it also shuts the machine down.

Its files live in ``~/.gpuctl`` of the login user (0700): the script, the deadline file (re-read at
every tick, so extending a TTL is one write) and its log. It runs in its own session, so ``gpuctl
down`` can end it and its ``sleep`` together by process group.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

from gpuctl.host.errors import HostError
from gpuctl.host.shell import Shell

STOP_MACHINE = "sudo -n shutdown -h now || shutdown -h now"
KEEP_MACHINE = "true"
MAX_INTERVAL_S = 30

_PRIVATE_DIR = 'd="$HOME/.gpuctl" && mkdir -p "$d" && chmod 700 "$d" && cd "$d" && pwd'
_START = 'setsid "$@" </dev/null >>"$LOG" 2>&1 & echo $!'
_STOP = ('pid=$1; if [ -r "/proc/$pid/cmdline" ] && tr "\\0" " " <"/proc/$pid/cmdline" | grep -qF -- "$2"; then '
         'kill -- "-$pid" 2>/dev/null || kill "$pid"; fi; rm -f -- "$2" "$3"')


class Armed(BaseModel):
    pid: int
    expires_at: datetime


def interval_for(ttl_seconds: int) -> int:
    """Tick often enough that a short TTL is honoured closely (a tenth of it, 1 to 30 s)."""
    return max(1, min(MAX_INTERVAL_S, ttl_seconds // 10))


def paths(directory: str, name: str) -> tuple[str, str, str]:
    """(script, deadline file, log) of deployment ``name``'s watchdog."""
    return f"{directory}/watchdog-{name}.sh", f"{directory}/{name}.deadline", f"{directory}/watchdog-{name}.log"


def private_dir(shell: Shell) -> str:
    return shell.run(["sh", "-c", _PRIVATE_DIR]).check("creating ~/.gpuctl", shell.where).stdout.strip()


def arm(shell: Shell, *, name: str, container: str, seconds_left: int, stop_machine: bool,
        sudo: bool = False) -> Armed:
    """Start the watchdog for ``container``, due ``seconds_left`` from now by the host's own clock."""
    from gpuctl.templating import watchdog_script

    directory = private_dir(shell)
    script_path, deadline_path, log_path = paths(directory, name)
    local_before = datetime.now(timezone.utc)
    host_now = host_seconds(shell.run(["date", "+%s.%N"]).check("date", shell.where).stdout.strip())
    # whole seconds on the host, rounded up: the TTL is never shorter than asked
    deadline = math.ceil(host_now + max(0, seconds_left))
    script = watchdog_script(deadline=deadline, container=container, deadline_file=deadline_path,
                             interval_s=interval_for(seconds_left),
                             shutdown_command=STOP_MACHINE if stop_machine else KEEP_MACHINE)
    for path, body in ((script_path, script), (deadline_path, f"{deadline}\n")):
        shell.run(["sh", "-c", 'umask 077 && cat > "$1"', "sh", path], input=body.encode()).check(
            f"writing {path}", shell.where)
    runner = ["sudo", "-n", "bash", script_path] if sudo else ["bash", script_path]
    started = shell.run(["env", f"LOG={log_path}", "sh", "-c", _START, "sh", *runner]).check(
        "starting the TTL watchdog", shell.where)
    try:
        pid = int(started.stdout.split()[-1])
    except (IndexError, ValueError):
        raise HostError(f"the TTL watchdog on {shell.where} did not start: {started.stdout!r}") from None
    # the host's deadline in this machine's clock, taken from before the host was asked: never later than
    # the real stop, so 'status' never shows time left on a stopped engine
    return Armed(pid=pid, expires_at=local_before + timedelta(seconds=deadline - host_now))


def host_seconds(date_output: str) -> float:
    """The host's clock from ``date +%s.%N``; where ``%N`` is unsupported (busybox prints it literally),
    the end of the reported second, so the deadline errs late and ``expires_at`` early."""
    whole, _, fraction = date_output.partition(".")
    if fraction.isdigit():
        return float(f"{whole}.{fraction}")
    return int(whole) + 1.0


def disarm(shell: Shell, *, name: str, pid: int | None, sudo: bool = False) -> None:
    """Stop deployment ``name``'s watchdog (only if ``pid`` still runs its script) and remove its files."""
    directory = private_dir(shell)
    script_path, deadline_path, log_path = paths(directory, name)
    prefix = ["sudo", "-n"] if sudo else []
    shell.run([*prefix, "sh", "-c", _STOP, "sh", str(pid or 0), script_path, deadline_path]).check(
        "stopping the TTL watchdog", shell.where)
    shell.run(["rm", "-f", "--", log_path])
