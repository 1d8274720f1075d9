"""gpuctl's SSH layer against a fake GPU host: trust rules, commands, uploads, streams, the ssh argv."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gpuctl.errors import CredentialsError, ExitCode, TimeoutError_
from gpuctl.host.errors import HostError, HostKeyChangedError, UnknownHostKeyError
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.keys import ensure_project_key, fingerprint_sha256
from gpuctl.host.ssh import SshSession, connect, open_session, openssh_argv, wait_for_ssh
from gpuctl.host.sshconfig import resolve_ssh_options
from gpuctl.host.target import parse_target
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


@pytest.fixture
def state_dir(isolated: Path) -> Path:
    return isolated / ".gpuctl"


@pytest.fixture
def identity(fakehost_env: FakeHostEnv) -> Path:
    return fakehost_env.client_key


def _pin(host: FakeGpuHost, state_dir: Path) -> None:
    pinned_known_hosts(state_dir).write_text(host.known_hosts_line + "\n")


def _session(host: FakeGpuHost, state_dir: Path, identity: Path, **kwargs: object) -> SshSession:
    return open_session(parse_target(host.target), state_dir, identity=identity, **kwargs)  # type: ignore[arg-type]


def _keygen_fingerprint(host: FakeGpuHost) -> str:
    listed = subprocess.run(["ssh-keygen", "-lf", str(host.host_key_path.with_suffix(".pub"))],
                            capture_output=True, text=True, check=True).stdout
    return listed.split()[1]


def test_pinned_host_runs_commands(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    with _session(fake_gpu_host, state_dir, identity) as session:
        assert session.where == f"root@{fake_gpu_host.address}:22"
        done = session.run(["sh", "-c", 'echo "$1"; echo oops >&2; exit 3', "sh", "it's quoted"])
        assert (done.exit_code, done.stdout, done.stderr) == (3, "it's quoted\n", "oops\n")
        echoed = session.run(["cat"], input=b"from stdin\x00\xff")
        assert echoed.stdout == "from stdin\x00\ufffd"
        big = session.run(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"])
        assert len(big.stdout) == 3_000_000


def test_command_timeout_is_exit_7(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    with _session(fake_gpu_host, state_dir, identity) as session:
        started = time.monotonic()
        with pytest.raises(TimeoutError_) as caught:
            session.run(["sleep", "30"], timeout=0.5)
        assert time.monotonic() - started < 3
        assert caught.value.exit_code == ExitCode.TIMEOUT
        assert session.run(["true"]).ok  # the connection survives a timed-out command


def test_unknown_host_key_is_refused_with_its_fingerprint(fake_gpu_host: FakeGpuHost, state_dir: Path,
                                                          identity: Path) -> None:
    with pytest.raises(UnknownHostKeyError) as caught:
        _session(fake_gpu_host, state_dir, identity)
    error = caught.value
    assert error.exit_code == ExitCode.USAGE
    assert (error.host, error.key_type) == (fake_gpu_host.address, "ssh-ed25519")
    assert error.fingerprint == _keygen_fingerprint(fake_gpu_host)
    assert error.fingerprint in error.message
    assert "--accept-host-key" in error.hint
    assert not pinned_known_hosts(state_dir).exists()


def test_accepting_pins_the_key_for_later_connections(fake_gpu_host: FakeGpuHost, state_dir: Path,
                                                      identity: Path) -> None:
    with _session(fake_gpu_host, state_dir, identity, accept_host_key=True) as session:
        assert session.run(["id", "-un"]).stdout == "root\n"
    pinned = pinned_known_hosts(state_dir)
    assert pinned.read_text() == fake_gpu_host.known_hosts_line + "\n"
    assert stat.S_IMODE(pinned.stat().st_mode) == 0o600
    with _session(fake_gpu_host, state_dir, identity) as session:  # no acceptance needed any more
        assert session.run(["true"]).ok


def test_users_known_hosts_is_honoured(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    user_file = Path.home() / ".ssh" / "known_hosts"
    user_file.parent.mkdir()
    user_file.write_text(f"unrelated.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0+Zm9vYmFyYmF6\n"
                         f"{fake_gpu_host.known_hosts_line}\n")
    with _session(fake_gpu_host, state_dir, identity) as session:
        assert session.run(["true"]).ok
    assert not pinned_known_hosts(state_dir).exists()
    assert user_file.read_text().count("\n") == 2  # read only: never written to


def test_changed_host_key_is_a_hard_error(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    host = fake_gpu_host  # later tests read the host's current key, so rotating it here is harmless
    _pin(host, state_dir)
    old = _keygen_fingerprint(host)
    host.rotate_host_key()
    for accept in (False, True):  # --accept-host-key never overrides a changed key
        with pytest.raises(HostKeyChangedError) as caught:
            _session(host, state_dir, identity, accept_host_key=accept)
        error = caught.value
        assert error.exit_code == ExitCode.CREDENTIALS
        assert (error.fingerprint, error.expected_fingerprint) == (_keygen_fingerprint(host), old)
        assert old in error.message and error.fingerprint in error.message
    assert pinned_known_hosts(state_dir).read_text().count("\n") == 1


def test_ssh_config_alias_and_project_key(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                          state_dir: Path) -> None:
    config = Path.home() / ".ssh" / "config"
    config.parent.mkdir()
    shutil.copy(fakehost_env.client_key, Path.home() / ".ssh" / "gpubox_key")
    config.write_text(f"Host gpubox\n  HostName {fake_gpu_host.address}\n  User root\n"
                      "  IdentityFile ~/.ssh/gpubox_key\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n")
    with open_session(parse_target("gpubox"), state_dir) as session:  # accept-new pins on first contact
        assert session.run(["id", "-u"]).stdout == "0\n"
    assert pinned_known_hosts(state_dir).read_text() == fake_gpu_host.known_hosts_line + "\n"


def test_wrong_key_is_exit_6(fake_gpu_host: FakeGpuHost, state_dir: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    ensure_project_key(state_dir)  # a key the host has never seen
    with pytest.raises(CredentialsError) as caught:
        open_session(parse_target(fake_gpu_host.target), state_dir)
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert f"root@{fake_gpu_host.address}:22" in caught.value.message


def test_project_key_logs_in_once_authorized(fake_gpu_host: FakeGpuHost, state_dir: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    key = ensure_project_key(state_dir, comment="gpuctl-test-project")
    authorized = fake_gpu_host.home / ".ssh" / "authorized_keys"
    original = authorized.read_text()
    authorized.write_text(original + key.public_key + "\n")  # what a provider does with LaunchRequest.ssh_public_key
    try:
        with open_session(parse_target(fake_gpu_host.target), state_dir) as session:
            assert session.run(["true"]).ok
    finally:
        authorized.write_text(original)


def test_unreachable_port_and_bounded_wait(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    closed = parse_target(f"root@{fake_gpu_host.address}:2222")
    with pytest.raises(HostError) as caught:
        open_session(closed, state_dir, identity=identity, timeout=2)
    assert caught.value.exit_code == ExitCode.PROVIDER
    started = time.monotonic()
    with pytest.raises(TimeoutError_) as waited:
        wait_for_ssh(lambda: open_session(closed, state_dir, identity=identity, timeout=1), timeout=1.0,
                     interval=0.3)
    assert time.monotonic() - started < 3
    assert "SSH did not come up within 1s" in waited.value.message


def test_wait_for_ssh_returns_once_up(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    attempts = []

    def flaky() -> SshSession:
        attempts.append(1)
        if len(attempts) < 3:
            raise HostError("connection refused")
        return _session(fake_gpu_host, state_dir, identity)

    with wait_for_ssh(flaky, timeout=10, interval=0.05) as session:
        assert session.run(["true"]).ok
    assert len(attempts) == 3


def test_upload_sets_the_mode_before_writing(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    target = fake_gpu_host.home / "upload.env"
    target.write_text("old, world-readable\n")
    target.chmod(0o644)
    with _session(fake_gpu_host, state_dir, identity) as session:
        path = session.upload("upload.env", b"HF_TOKEN=hf_x\n", 0o600)
        assert path == "/root/upload.env"
        assert session.file_mode(path) == 0o600
    assert target.read_bytes() == b"HF_TOKEN=hf_x\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in fake_gpu_host.home.iterdir() if p.name.endswith(".tmp")) == []


def test_closing_a_stream_ends_the_remote_command(fake_gpu_host: FakeGpuHost, state_dir: Path,
                                                  identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    marker = f"tick-{time.time_ns()}"
    with _session(fake_gpu_host, state_dir, identity) as session:
        lines = session.stream(["sh", "-c", f'while true; do echo {marker}; sleep 0.05; done'])
        assert [next(lines) for _ in range(3)] == [marker] * 3
        assert any(marker in cmd for _, cmd in fake_gpu_host.processes())
        lines.close()
        deadline = time.monotonic() + 5
        while any(marker in cmd for _, cmd in fake_gpu_host.processes()):
            assert time.monotonic() < deadline, "the remote loop outlived its stream"
            time.sleep(0.05)


def test_a_dialed_stream_is_a_channel_of_the_same_session(fake_gpu_host: FakeGpuHost, state_dir: Path,
                                                          identity: Path) -> None:
    _pin(fake_gpu_host, state_dir)
    logins_before = fake_gpu_host.log("sshd").count("Accepted publickey")
    with _session(fake_gpu_host, state_dir, identity) as session:
        dialer = session.dial(["cat"])
        streams = [dialer.open(10) for _ in range(3)]
        for number, stream in enumerate(streams):
            stream.sendall(b"ping %d" % number)
            assert stream.recv(6) == b"ping %d" % number
        dialer.close()
        failing = session.dial(["sh", "-c", "echo 'docker: not found' >&2; exit 127"])
        assert failing.open(10).recv(1) == b""
        assert failing.failure() == "exit 127: docker: not found"
    assert fake_gpu_host.log("sshd").count("Accepted publickey") == logins_before + 1, "one login for all of them"


def test_openssh_argv_applies_the_same_trust(fake_gpu_host: FakeGpuHost, state_dir: Path, identity: Path) -> None:
    options = resolve_ssh_options(parse_target(fake_gpu_host.target))
    pinned = pinned_known_hosts(state_dir)
    argv = openssh_argv(options, identity_files=[identity], pinned_file=pinned, command=["echo", "it's", "here"])
    assert argv[-3:] == [fake_gpu_host.address, "--", "echo 'it'\"'\"'s' here"]
    batch = [argv[0], "-o", "BatchMode=yes", *argv[1:]]
    refused = subprocess.run(batch, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 255  # not pinned yet: StrictHostKeyChecking=yes refuses
    _pin(fake_gpu_host, state_dir)
    ran = subprocess.run(batch, capture_output=True, text=True, timeout=30)
    assert (ran.returncode, ran.stdout) == (0, "it's here\n")


def test_fingerprint_helper_agrees_with_paramiko_connect(fake_gpu_host: FakeGpuHost, state_dir: Path,
                                                         identity: Path) -> None:
    options = resolve_ssh_options(parse_target(fake_gpu_host.target))
    with pytest.raises(UnknownHostKeyError) as caught:
        connect(options, pinned_file=pinned_known_hosts(state_dir), identity_files=[identity])
    blob = base64.b64decode(fake_gpu_host.host_public_key.split()[1])
    assert caught.value.fingerprint == fingerprint_sha256(blob)
