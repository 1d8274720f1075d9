"""Parsing ``--host`` values."""

from __future__ import annotations

import pytest

from gpuctl.errors import ExitCode, UsageError
from gpuctl.host.target import HostTarget, parse_target


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("ubuntu@203.0.113.7", "ubuntu", "203.0.113.7", None),
        ("ubuntu@203.0.113.7:2222", "ubuntu", "203.0.113.7", 2222),
        ("203.0.113.7", None, "203.0.113.7", None),
        ("gpubox", None, "gpubox", None),
        ("me@gpu-1.example.org:22", "me", "gpu-1.example.org", 22),
        ("root@[2001:db8::7]:2200", "root", "2001:db8::7", 2200),
        ("root@2001:db8::7", "root", "2001:db8::7", None),
        ("[2001:db8::7]", None, "2001:db8::7", None),
        ("first.last@host", "first.last", "host", None),
        ("  ubuntu@host  ", "ubuntu", "host", None),
    ],
)
def test_parses_ssh_destinations(text: str, user: str | None, host: str, port: int | None) -> None:
    assert parse_target(text) == HostTarget(kind="ssh", user=user, host=host, port=port)


def test_local_means_this_machines_docker() -> None:
    target = parse_target("local")
    assert target == HostTarget(kind="local")
    assert str(target) == "local"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("@host", "empty user name"),
        ("ubuntu@", "not a host name"),
        ("ubuntu@host:0", "port '0'"),
        ("ubuntu@host:65536", "port '65536'"),
        ("ubuntu@host:ssh", "port 'ssh'"),
        ("ubuntu@host:", "port ''"),
        ("ubuntu@[::1", "unbalanced brackets"),
        ("ubuntu@[::1]x", "unbalanced brackets"),
        ("ubuntu@host name", "not a host name"),
        ("ubu ntu@host", "not a valid user name"),
        ("ubuntu@ho/st", "not a host name"),
    ],
)
def test_rejects_malformed_targets_with_exit_2(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_target(text)
    assert problem in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE
    assert "user@addr[:port]" in caught.value.hint


@pytest.mark.parametrize("text", ["ubuntu@203.0.113.7:2222", "root@[2001:db8::7]:2200", "gpubox", "me@host"])
def test_str_round_trips(text: str) -> None:
    assert parse_target(str(parse_target(text))) == parse_target(text)
    assert str(parse_target(text)) == text
