"""Finding and stopping TTL watchdogs on a host by their labels, not by a pid someone had to record.

A watchdog (``templates/watchdog.sh``, armed by :mod:`gpuctl.deploy.watchdog`) runs with its labels as
words of its command line: ``bash SCRIPT gpuctl-watchdog gpuctl-role=watchdog gpuctl-project=P
gpuctl-deployment=NAME gpuctl-token=T gpuctl-container=ID``. So a watchdog whose pid never reached the
state file (gpuctl killed in between) is still found, and one deployment's watchdog is told apart
from that of a later deployment of the same name by its token.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from gpuctl.host import labels
from gpuctl.host.shell import Shell

#: the word that marks a watchdog's command line
MARKER = "gpuctl-watchdog"
#: gpuctl's private directory on a host, under the login user's home
PRIVATE_DIR = ".gpuctl"
#: a watchdog's directory there: watchdog.PROJECT.TOKEN ('-' for an unknown project)
_DIR_RE = re.compile(r"^watchdog\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
_PRIVATE_DIR = f'd="$HOME/{PRIVATE_DIR}" && mkdir -p "$d" && chmod 700 "$d" && cd "$d" && pwd'
STOP_WAIT_S = 5.0
# Every process with the marker as one word of its command line: "pid<TAB>pgid<TAB>command line" (-z: the
# words are NUL-separated). The pattern is written so that it does not match the grep doing the search.
_FIND = (
    "for f in $(grep -lazx 'gpuctl[-]watchdog' /proc/[0-9]*/cmdline 2>/dev/null); do "
    'd=${f%/cmdline}; pid=${d#/proc/}; '
    'pgid=$(cut -d")" -f2- "$d/stat" 2>/dev/null | cut -d" " -f4) || continue; '
    'args=$(tr "\\0" " " < "$f" 2>/dev/null) || continue; '
    'printf "%s\\t%s\\t%s\\n" "$pid" "$pgid" "$args"; done'
)
# (dash's kill takes no '--': a negative pid right after the signal names the process group)
_STOP = ('for g in "$@"; do kill -TERM "-$g" 2>/dev/null; done; '
         'for i in $(seq 1 50); do alive=; for g in "$@"; do kill -0 "-$g" 2>/dev/null && alive=1; done; '
         '[ -z "$alive" ] && exit 0; sleep 0.1; done; '
         'for g in "$@"; do kill -KILL "-$g" 2>/dev/null; done; exit 0')


class Watchdog(BaseModel):
    """One watchdog process group on a host."""

    pid: int
    pgid: int
    labels: dict[str, str] = Field(default_factory=dict)
    script: str = ""

    @property
    def project(self) -> str | None:
        return self.labels.get(labels.PROJECT)

    @property
    def deployment(self) -> str | None:
        return self.labels.get(labels.DEPLOYMENT)

    @property
    def token(self) -> str | None:
        return self.labels.get(labels.TOKEN)

    @property
    def container(self) -> str | None:
        return self.labels.get(labels.CONTAINER)


def directory_name(project: str | None, token: str) -> str:
    return f"watchdog.{project or '-'}.{token}"


def parse_directory_name(name: str) -> tuple[str | None, str] | None:
    """(project or None, token) of a watchdog directory's name; None for anything else."""
    match = _DIR_RE.match(name)
    if not match:
        return None
    project, token = match.groups()
    return (None if project == "-" else project), token


def paths(directory: str, name: str) -> tuple[str, str, str]:
    """(script, deadline file, log) of deployment ``name``'s watchdog in ``directory``."""
    return f"{directory}/watchdog-{name}.sh", f"{directory}/{name}.deadline", f"{directory}/watchdog-{name}.log"


def private_dir(shell: Shell) -> str:
    """``~/.gpuctl`` on the host (0700), created when missing; its absolute path."""
    return shell.run(["sh", "-c", _PRIVATE_DIR]).check("creating ~/.gpuctl", shell.where).stdout.strip()


def watchdog_argv(script: str, label_set: dict[str, str]) -> list[str]:
    """The words after the interpreter: the script, the marker, then the labels."""
    return [script, MARKER, *(f"{key}={value}" for key, value in label_set.items())]


def parse_watchdogs(listing: str) -> list[Watchdog]:
    """Watchdogs from the search's output; a process group appears once (sudo and its bash share it)."""
    found: dict[int, Watchdog] = {}
    for line in listing.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].strip().isdigit():
            continue
        pid, pgid, args = int(parts[0]), int(parts[1]), parts[2].split()
        if MARKER not in args:
            continue
        at = args.index(MARKER)
        label_set = dict(word.split("=", 1) for word in args[at + 1:] if "=" in word)
        if pgid not in found or pid == pgid:
            found[pgid] = Watchdog(pid=pid, pgid=pgid, labels=label_set, script=args[at - 1] if at else "")
    return sorted(found.values(), key=lambda w: w.pgid)


def find_watchdogs(shell: Shell, *, project: str | None = None, deployment: str | None = None,
                   token: str | None = None) -> list[Watchdog]:
    """The watchdogs running on the host, those matching every criterion given."""
    listing = shell.run(["sh", "-c", _FIND], timeout=60).check("looking for TTL watchdogs", shell.where).stdout
    return [w for w in parse_watchdogs(listing)
            if (project is None or w.project == project) and (deployment is None or w.deployment == deployment)
            and (token is None or w.token == token)]


def stop(shell: Shell, watchdogs: list[Watchdog], *, sudo: bool = False) -> None:
    """End each watchdog's process group (TERM, then KILL after a few seconds)."""
    if not watchdogs:
        return
    prefix = ["sudo", "-n"] if sudo else []
    groups = [str(w.pgid) for w in watchdogs]
    shell.run([*prefix, "sh", "-c", _STOP, "sh", *groups], timeout=STOP_WAIT_S + 30).check(
        "stopping the TTL watchdog", shell.where)


def stop_watchdogs(shell: Shell, *, token: str | None = None, deployment: str | None = None,
                   project: str | None = None, sudo: bool = False) -> list[Watchdog]:
    """Stop the watchdogs of one deployment: by its token when known (never another deployment's),
    else by its name (within ``project`` when given). Returns those stopped."""
    if token is None and deployment is None:
        raise ValueError("stop_watchdogs needs a token or a deployment name")
    found = find_watchdogs(shell, token=token, deployment=None if token else deployment,
                           project=None if token else project)
    stop(shell, found, sudo=sudo)
    return found


def disarm(shell: Shell, *, name: str, pid: int | None = None, sudo: bool = False, token: str | None = None,
           project: str | None = None) -> list[Watchdog]:
    """Stop deployment ``name``'s watchdog and remove its files; returns the watchdogs stopped.

    With ``token`` only that deployment's watchdog and directory are touched, whatever pid was (or was
    not) recorded. Without one, the watchdogs labelled with ``name`` (in ``project``, when given) and
    the directories holding a ``watchdog-NAME.sh`` that no running watchdog uses, plus the files of a
    watchdog armed by an older gpuctl (``~/.gpuctl/watchdog-NAME.*``, stopped by its recorded ``pid``).
    """
    stopped = stop_watchdogs(shell, token=token, deployment=name, project=project, sudo=sudo)
    if token:
        shell.run(["sh", "-c", _REMOVE_TOKENS, "sh", token]).check("removing the TTL watchdog's files", shell.where)
        return stopped
    if pid is not None:
        _stop_legacy(shell, name, pid, sudo)
    live = [w.token for w in find_watchdogs(shell) if w.token]
    home = private_dir(shell)
    shell.run(["sh", "-c", _REMOVE_NAMED, "sh", name, project or "*", *paths(home, name), "--", *live]).check(
        "removing the TTL watchdog's files", shell.where)
    return stopped


# FILE SECONDS: add SECONDS to the deadline in FILE (epoch seconds on the host's clock), atomically
_MOVE_DEADLINE = ('f=$1; d=$(cat "$f") || exit 1; case "$d" in ""|*[!0-9]*) exit 2;; esac; '
                  'umask 077 && echo $((d + $2)) > "$f.new" && mv -f "$f.new" "$f" && cat "$f"')


def move_deadline(shell: Shell, name: str, seconds: int) -> int:
    """Move the deadline of deployment ``name``'s running watchdog by ``seconds`` (it re-reads the file at
    every tick); the new deadline, in epoch seconds on the host's clock. HostError when none runs."""
    from gpuctl.host.errors import HostError

    found = [w for w in find_watchdogs(shell, deployment=name) if w.script]
    if not found:
        raise HostError(f"no TTL watchdog of '{name}' runs on {shell.where}",
                        "its TTL may have run out already ('gpuctl status' shows it)")
    deadline = 0
    for watchdog in found:
        directory = watchdog.script.rsplit("/", 1)[0]
        moved = shell.run(["sh", "-c", _MOVE_DEADLINE, "sh", paths(directory, name)[1], str(seconds)])
        deadline = int(moved.check("moving the TTL watchdog's deadline", shell.where).stdout.strip())
    return deadline


# every watchdog.*.TOKEN directory of ~/.gpuctl, for each TOKEN given
_REMOVE_TOKENS = (f'cd "$HOME/{PRIVATE_DIR}" 2>/dev/null || exit 0; '
                  'for t in "$@"; do rm -rf -- watchdog.*."$t"; done')
# NAME PROJECT(or *) LEGACY-FILES... -- LIVE-TOKENS...: the legacy files, and each watchdog.PROJECT.* directory
# holding watchdog-NAME.sh whose token is not live
_REMOVE_NAMED = ('name=$1; project=$2; shift 2; while [ "$#" -gt 0 ] && [ "$1" != -- ]; do rm -f -- "$1"; shift; '
                 f'done; shift; cd "$HOME/{PRIVATE_DIR}" 2>/dev/null || exit 0; '
                 'for d in watchdog.$project.*; do [ -e "$d/watchdog-$name.sh" ] || continue; keep=; '
                 'for t in "$@"; do [ "${d##*.}" = "$t" ] && keep=1; done; [ -n "$keep" ] || rm -rf -- "$d"; done')


# a watchdog armed by an older gpuctl: no labels, only its recorded pid running ~/.gpuctl/watchdog-NAME.sh
_LEGACY_STOP = ('pid=$1; if [ -r "/proc/$pid/cmdline" ] && tr "\\0" " " <"/proc/$pid/cmdline" | grep -qF -- "$2"; '
                'then kill -TERM "-$pid" 2>/dev/null || kill "$pid"; fi')


def _stop_legacy(shell: Shell, name: str, pid: int, sudo: bool) -> None:
    script = paths(private_dir(shell), name)[0]
    prefix = ["sudo", "-n"] if sudo else []
    shell.run([*prefix, "sh", "-c", _LEGACY_STOP, "sh", str(pid), script]).check(
        "stopping the TTL watchdog", shell.where)
