"""~/.ssh/config applied to a --host target, the way ssh itself reads it."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from gpuctl.errors import ConfigError, UsageError
from gpuctl.host.sshconfig import resolve_ssh_options
from gpuctl.host.target import parse_target

CONFIG = """\
Host gpubox
    HostName 198.51.100.20
    User ubuntu
    Port 2202
    IdentityFile ~/.ssh/gpubox_key
    IdentitiesOnly yes
    UserKnownHostsFile ~/.ssh/known_hosts_gpu /etc/ssh/gpu_known_hosts
    StrictHostKeyChecking accept-new

Host jumpy
    ProxyJump bastion

Host viaproxy
    HostName 198.51.100.30
    ProxyCommand ssh -W %h:%p bastion

Host *
    User fallback
"""


@pytest.fixture
def ssh_config(isolated: Path) -> Path:
    path = Path.home() / ".ssh" / "config"
    path.parent.mkdir()
    path.write_text(CONFIG)
    return path


def test_alias_takes_every_value_from_the_config(ssh_config: Path) -> None:
    options = resolve_ssh_options(parse_target("gpubox"))
    home = Path.home()
    assert options.alias == "gpubox"
    assert options.hostname == "198.51.100.20"
    assert options.port == 2202
    assert options.user == "ubuntu"
    assert options.identity_files == [home / ".ssh" / "gpubox_key"]
    assert options.identities_only is True
    assert options.user_known_hosts_files == [home / ".ssh" / "known_hosts_gpu", Path("/etc/ssh/gpu_known_hosts")]
    assert options.strict_host_key_checking == "accept-new"
    assert options.proxy_command is None


def test_user_and_port_typed_on_the_command_line_win(ssh_config: Path) -> None:
    options = resolve_ssh_options(parse_target("root@gpubox:22"))
    assert (options.user, options.port, options.hostname) == ("root", 22, "198.51.100.20")


def test_unlisted_host_gets_ssh_defaults(ssh_config: Path) -> None:
    options = resolve_ssh_options(parse_target("203.0.113.9"))
    home = Path.home()
    assert (options.hostname, options.port, options.user) == ("203.0.113.9", 22, "fallback")
    assert options.identity_files == []
    assert options.identities_only is False
    assert options.user_known_hosts_files == [home / ".ssh" / "known_hosts", home / ".ssh" / "known_hosts2"]
    assert options.strict_host_key_checking == "ask"


def test_without_a_config_file_the_local_user_name_is_used(isolated: Path) -> None:
    options = resolve_ssh_options(parse_target("203.0.113.9"))
    assert options.user == getpass.getuser()
    assert options.port == 22


def test_proxy_command_is_expanded(ssh_config: Path) -> None:
    options = resolve_ssh_options(parse_target("viaproxy"))
    assert options.proxy_command == "ssh -W 198.51.100.30:22 bastion"


def test_proxy_jump_is_refused_with_the_workaround(ssh_config: Path) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_ssh_options(parse_target("jumpy"))
    assert "ProxyJump" in caught.value.message
    assert "ProxyCommand ssh -W %h:%p JUMPHOST" in caught.value.hint


def test_bad_port_in_config_names_the_file(isolated: Path) -> None:
    path = Path.home() / ".ssh" / "config"
    path.parent.mkdir()
    path.write_text("Host broken\n  Port twenty\n")
    with pytest.raises(ConfigError) as caught:
        resolve_ssh_options(parse_target("broken"))
    assert str(path) in caught.value.message


def test_local_target_is_not_an_ssh_destination() -> None:
    with pytest.raises(UsageError):
        resolve_ssh_options(parse_target("local"))
