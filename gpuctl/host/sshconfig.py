"""What ``ssh`` itself would use for a destination: ``~/.ssh/config`` applied to a ``--host`` target."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from pydantic import BaseModel, Field

from gpuctl.errors import ConfigError, UsageError
from gpuctl.host.target import HostTarget

DEFAULT_PORT = 22


class SshOptions(BaseModel):
    """A resolved SSH destination. Values from the target (``user@``, ``:port``) win over the config."""

    alias: str = Field(description="what the user typed; the name ~/.ssh/config was looked up with")
    hostname: str
    port: int = DEFAULT_PORT
    user: str
    identity_files: list[Path] = Field(default_factory=list)
    identities_only: bool = False
    proxy_command: str | None = None
    user_known_hosts_files: list[Path] = Field(default_factory=list)
    strict_host_key_checking: str = "ask"


def user_ssh_config_path() -> Path:
    return Path(os.path.expanduser("~/.ssh/config"))


def resolve_ssh_options(target: HostTarget, config_path: Path | None = None) -> SshOptions:
    """Apply the ssh config (default ``~/.ssh/config``; a missing file is fine) to ``target``."""
    if target.kind != "ssh" or not target.host:
        raise UsageError(f"'{target}' is not an SSH destination")
    path = config_path if config_path is not None else user_ssh_config_path()
    found = _lookup(path, target.host)
    if "proxyjump" in found:
        raise UsageError(
            f"{path}: ProxyJump (host {target.host}) is not supported by gpuctl's SSH client",
            "write the jump as 'ProxyCommand ssh -W %h:%p JUMPHOST' instead",
        )
    known_hosts = found.get("userknownhostsfile", "~/.ssh/known_hosts ~/.ssh/known_hosts2")
    try:
        config_port = int(found.get("port", DEFAULT_PORT))
    except ValueError:
        raise ConfigError(f"{path}: Port for host {target.host} is not a number") from None
    return SshOptions(
        alias=target.host,
        hostname=found.get("hostname", target.host),
        port=target.port or config_port,
        user=target.user or found.get("user") or getpass.getuser(),
        identity_files=[Path(os.path.expanduser(p)) for p in found.get("identityfile", [])],
        identities_only=found.get("identitiesonly", "no").lower() == "yes",
        proxy_command=found.get("proxycommand") if found.get("proxycommand", "none") != "none" else None,
        user_known_hosts_files=[Path(os.path.expanduser(p)) for p in known_hosts.split()],
        strict_host_key_checking=found.get("stricthostkeychecking", "ask").lower(),
    )


def _lookup(path: Path, host: str) -> dict:
    if not path.is_file():
        return {}
    import paramiko

    try:
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(host))
    except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
