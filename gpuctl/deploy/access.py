"""Reaching a deployment after ``up``: a shell on its host, its engine logs, an ssh command, its env vars."""

from __future__ import annotations

import shlex
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.endpoint import openai_base, reach
from gpuctl.errors import UsageError
from gpuctl.host.shell import Shell
from gpuctl.host.target import HostTarget, parse_target
from gpuctl.models.deployment import Deployment
from gpuctl.providers.capabilities import Capability

#: what OpenAI clients get as a key for an engine that has none (they insist on some value)
NO_KEY = "EMPTY"
#: seconds between reads of a provider-run engine's log while following it
FOLLOW_POLL_S = 2.0


def host_target(deployment: Deployment) -> HostTarget:
    if not deployment.host:
        raise UsageError(f"'{deployment.name}' does not run on a host gpuctl can reach "
                         f"({deployment.provider} runs the engine itself)")
    return parse_target(deployment.host)


def ssh_target(ctx: DeployContext, deployment: Deployment) -> HostTarget:
    """Where SSH reaches the deployment: its host, else the SSH port its provider publishes (a RunPod pod)."""
    if deployment.host:
        return parse_target(deployment.host)
    if not deployment.instance_id:
        raise UsageError(f"'{deployment.name}' has no machine yet (status {deployment.status})")
    provider = ctx.provider(deployment.provider)
    instance = provider.get(deployment.instance_id)
    if instance.status != "running" or not instance.ssh_host:
        raise UsageError(f"'{deployment.name}' publishes no SSH port ({provider.display_name} status "
                         f"{instance.provider_status or instance.status})",
                         "a pod publishes SSH (22/tcp) once it runs; 'gpuctl status' shows its state")
    return HostTarget(kind="ssh", host=instance.ssh_host, port=instance.ssh_port, user=instance.ssh_user)


def pin_on_first_contact(ctx: DeployContext, target: HostTarget) -> None:
    """Pin the host key of a machine the provider rented us (as the lifecycle does) when none is pinned yet.

    OpenSSH then checks it strictly; a key that changed later is refused, not re-pinned.
    """
    from gpuctl.host.hostkeys import known_hosts_name, pinned_known_hosts
    from gpuctl.host.ssh import open_session

    pinned = pinned_known_hosts(ctx.state_dir)
    name = known_hosts_name(str(target.host), target.port or 22)
    if pinned.exists() and any(line.split(" ", 1)[0] == name for line in pinned.read_text("utf-8").splitlines()):
        return
    open_session(target, ctx.state_dir, accept_host_key=True).close()


@contextmanager
def open_host(ctx: DeployContext, deployment: Deployment, *, shell: Shell | None = None,
              timeout: float = 15.0) -> Iterator[Shell]:
    """A shell on the deployment's host (``shell`` when one is open already); its key must be pinned."""
    if shell is not None:
        yield shell
        return
    from gpuctl.deploy.hosts import connect, opened

    identity = Path(deployment.identity) if deployment.identity else None
    with opened(connect(host_target(deployment), ctx.state_dir, identity=identity, timeout=timeout)) as host:
        yield host


@contextmanager
def endpoint_from_here(ctx: DeployContext, deployment: Deployment, *, shell: Shell | None = None) -> Iterator[str]:
    """The engine's base URL as this machine reaches it: the endpoint, or an SSH tunnel to a private one
    (through ``shell`` when a session to the host is open already)."""
    if not deployment.tunnel:
        with reach(deployment, None) as base:
            yield base
        return
    with open_host(ctx, deployment, shell=shell) as host, reach(deployment, host) as base:
        yield base


def engine_logs(ctx: DeployContext, deployment: Deployment, tail: int | None) -> str:
    """The engine's last ``tail`` lines (all with None)."""
    if not deployment.host:
        provider = ctx.provider(deployment.provider)
        if not provider.can(Capability.ENGINE_LOGS):
            raise UsageError(f"{provider.display_name} cannot show the engine log of '{deployment.name}'",
                             "look at it in the provider's console")
        return provider.engine_logs(deployment.instance_id or "", tail)
    from gpuctl.host.docker import DockerEngine

    with open_host(ctx, deployment) as host:
        return DockerEngine(host, sudo=deployment.docker_sudo).logs(_container(deployment), tail)


def follow_engine_logs(ctx: DeployContext, deployment: Deployment, tail: int | None) -> Generator[str, None, None]:
    """Log lines as the engine writes them, until it stops or the caller stops iterating."""
    if not deployment.host:
        yield from _poll_provider_logs(ctx, deployment, tail)
        return
    from gpuctl.host.docker import DockerEngine

    with open_host(ctx, deployment) as host:
        yield from DockerEngine(host, sudo=deployment.docker_sudo).follow_logs(_container(deployment), tail)


def _poll_provider_logs(ctx: DeployContext, deployment: Deployment, tail: int | None) -> Iterator[str]:
    """A provider-run engine's new log lines, read every FOLLOW_POLL_S seconds until its machine stops.

    The provider shows only the log's last lines, so each read is matched against the one before;
    a line repeated exactly across that seam may be shown once only.
    """
    from gpuctl.errors import NotFoundError

    provider = ctx.provider(deployment.provider)
    instance_id = deployment.instance_id or ""
    seen: list[str] | None = None
    while True:
        try:
            alive = provider.get(instance_id).status in ("pending", "running")
        except NotFoundError:
            return
        lines = engine_logs(ctx, deployment, None).splitlines()
        if seen is None:
            yield from lines[len(lines) - tail:] if tail is not None and tail < len(lines) else lines
        else:
            yield from lines[_overlap(seen, lines):]
        seen = lines
        if not alive:
            return
        _pause(FOLLOW_POLL_S)


def _overlap(before: list[str], after: list[str]) -> int:
    """How many lines at the start of ``after`` end ``before`` (the longest such run)."""
    for count in range(min(len(before), len(after)), 0, -1):
        if before[len(before) - count:] == after[:count]:
            return count
    return 0


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _container(deployment: Deployment) -> str:
    if not deployment.container:
        raise UsageError(f"'{deployment.name}' has no engine container yet (status {deployment.status})")
    return deployment.container


def ssh_argv(ctx: DeployContext, deployment: Deployment, command: list[str], *,
             tunnel_port: int | None = None, pin: bool = False) -> list[str]:
    """The OpenSSH command line for a shell (or ``command``, or a tunnel) on the deployment's host.

    Trust is the same as gpuctl's own: the user's known_hosts plus the project's pinned keys, strictly.
    A deployment without a host (a RunPod pod) is reached on the SSH port its provider publishes;
    ``pin`` pins that machine's key on first contact.
    """
    from gpuctl.host.hostkeys import pinned_known_hosts
    from gpuctl.host.keys import KEY_FILE, SSH_DIR
    from gpuctl.host.ssh import openssh_argv
    from gpuctl.host.sshconfig import resolve_ssh_options

    target = ssh_target(ctx, deployment)
    if pin and not deployment.host:
        pin_on_first_contact(ctx, target)
    if target.kind == "local":
        raise UsageError(f"'{deployment.name}' runs on this machine: no SSH needed",
                         f"use docker directly, e.g. 'docker logs {deployment.container}'")
    identities = [Path(deployment.identity)] if deployment.identity else []
    identities.append(ctx.state_dir / SSH_DIR / KEY_FILE)
    argv = openssh_argv(resolve_ssh_options(target), identity_files=identities,
                        pinned_file=pinned_known_hosts(ctx.state_dir), command=command)
    if tunnel_port is not None:
        if deployment.host_port is None:
            raise UsageError(f"'{deployment.name}' has no engine port yet (status {deployment.status})")
        argv[1:1] = ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{tunnel_port}:127.0.0.1:{deployment.host_port}"]
    return argv


def env_lines(ctx: DeployContext, deployment: Deployment) -> list[str]:
    """``export`` lines for OpenAI clients, ready for ``eval``."""
    from gpuctl.deploy.secrets import read_api_key

    if not deployment.endpoint or deployment.status != "running":
        raise UsageError(f"'{deployment.name}' has no endpoint (status {deployment.status})",
                         "'gpuctl status' shows its state")
    key = read_api_key(ctx.state_dir, deployment.name) or NO_KEY
    return [f"export OPENAI_BASE_URL={shlex.quote(openai_base(deployment.endpoint))}",
            f"export OPENAI_API_KEY={shlex.quote(key)}"]
