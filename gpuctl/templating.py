"""Render the shell scripts in ``templates/`` that gpuctl puts on a host.

Placeholders are ``@@NAME@@`` (shell, Go templates and cloud-init all claim ``$`` and ``{{ }}``). Values
are shell-quoted unless wrapped in ``Raw`` (for embedding one rendered script in another); a missing
or unused value is an error, so a renamed placeholder cannot ship half-rendered.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from gpuctl.resources import list_files, read_text

PLACEHOLDER = re.compile(r"@@([A-Z][A-Z0-9_]*)@@")


@dataclass(frozen=True)
class Raw:
    """A value inserted verbatim (the caller vouches for it, e.g. another rendered template)."""

    text: str


Value = str | int | float | Raw


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_text(text: str, values: dict[str, Value], *, name: str = "template") -> str:
    """``text`` with every placeholder replaced; missing or unused values raise ValueError."""
    wanted = placeholders(text)
    missing, unused = wanted - set(values), set(values) - wanted
    if missing or unused:
        problems = [f"missing {', '.join(sorted(missing))}"] if missing else []
        problems += [f"unused {', '.join(sorted(unused))}"] if unused else []
        raise ValueError(f"{name}: {'; '.join(problems)}")

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return value.text if isinstance(value, Raw) else shlex.quote(str(value))

    return PLACEHOLDER.sub(substitute, text)


def render(template: str, values: dict[str, Value]) -> str:
    """The shipped template ``templates/<template>`` rendered with ``values``."""
    return render_text(read_text("templates", template), values, name=template)


def template_names() -> list[str]:
    return list_files("templates", ".sh")


#: gpuctl's private directory on a host (deadline file, env-file)
HOST_CONFIG_DIR = "/etc/gpuctl"
DEADLINE_FILE = f"{HOST_CONFIG_DIR}/deadline"
WATCHDOG_INTERVAL_S = 30


def bootstrap_script(*, cache_dir: str, config_dir: str = HOST_CONFIG_DIR) -> str:
    return render("bootstrap.sh", {"CACHE_DIR": cache_dir, "CONFIG_DIR": config_dir})


def watchdog_script(*, deadline: int, container: str, deadline_file: str = DEADLINE_FILE,
                    interval_s: int = WATCHDOG_INTERVAL_S, shutdown_command: str = "shutdown -h now",
                    budget_deadline: int = 0, idle: IdleWatch | None = None) -> str:
    """The watchdog; ``deadline`` (Unix seconds, 0: no TTL) applies until the deadline file says otherwise.

    ``budget_deadline`` (Unix seconds, 0: none) is when the budget runs out; ``idle`` ends it after that
    long without a request to the engine.
    """
    idle = idle or IdleWatch()
    return render("watchdog.sh", {"DEADLINE_FILE": deadline_file, "FALLBACK_DEADLINE": deadline,
                                  "CONTAINER_NAME": container, "INTERVAL_SECONDS": interval_s,
                                  "SHUTDOWN_COMMAND": shutdown_command, "BUDGET_DEADLINE": budget_deadline,
                                  "IDLE_SECONDS": idle.seconds, "METRICS_PORT": idle.port,
                                  "BUSY_METRICS": " ".join(idle.busy_metrics),
                                  "REQUEST_METRICS": " ".join(idle.request_metrics),
                                  "ACTIVITY_FILE": idle.activity_file})


@dataclass(frozen=True)
class IdleWatch:
    """How the watchdog tells an idle engine: after ``seconds`` (0: never) without a request, read from
    ``http://127.0.0.1:PORT/metrics`` (gauges of requests in the engine, counters of finished ones); the
    last activity is written to ``activity_file``."""

    seconds: int = 0
    port: int = 0
    busy_metrics: tuple[str, ...] = ()
    request_metrics: tuple[str, ...] = ()
    activity_file: str = "/dev/null"


def aws_user_data(*, deadline: int, container: str, cache_dir: str) -> str:
    """First-boot script for AWS: arms the watchdog, then bootstraps the host."""
    watchdog = watchdog_script(deadline=deadline, container=container)
    bootstrap = bootstrap_script(cache_dir=cache_dir)
    for terminator, body in (("GPUCTL_WATCHDOG_EOF", watchdog), ("GPUCTL_BOOTSTRAP_EOF", bootstrap)):
        if terminator in body.splitlines():
            raise ValueError(f"embedded script contains its heredoc terminator {terminator}")
    return render("aws-user-data.sh", {
        "CONFIG_DIR": HOST_CONFIG_DIR, "DEADLINE": deadline, "DEADLINE_FILE": DEADLINE_FILE,
        "WATCHDOG": Raw(watchdog.rstrip("\n")), "BOOTSTRAP": Raw(bootstrap.rstrip("\n")),
    })
