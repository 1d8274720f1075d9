"""SSH login failures are authentication (exit 6, pointing at --identity), not "cannot reach the host" (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.errors import CredentialsError, ExitCode
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import open_session
from gpuctl.host.target import parse_target
from tests.fakehost.host import FakeGpuHost

pytestmark = pytest.mark.integration


@pytest.fixture
def pinned(fake_gpu_host: FakeGpuHost, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent offers a key
    state_dir = isolated / ".gpuctl"
    state_dir.mkdir(exist_ok=True)
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    return state_dir


def test_no_key_offered(fake_gpu_host: FakeGpuHost, pinned: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        open_session(parse_target(fake_gpu_host.target), pinned, timeout=10)
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert "--identity" in caught.value.hint and "cannot reach" not in caught.value.message


def test_identity_file_that_is_not_a_private_key(fake_gpu_host: FakeGpuHost, pinned: Path, tmp_path: Path) -> None:
    junk = tmp_path / "id_junk"
    junk.write_text("this is not a key\n")
    with pytest.raises(CredentialsError) as caught:
        open_session(parse_target(fake_gpu_host.target), pinned, identity=junk, timeout=10)
    assert str(junk) in caught.value.message and "not a private key" in caught.value.message
    assert "--identity" in caught.value.hint


def test_a_public_key_given_as_identity(fake_gpu_host: FakeGpuHost, pinned: Path, fakehost_env) -> None:
    public = Path(str(fakehost_env.client_key) + ".pub")
    with pytest.raises(CredentialsError) as caught:
        open_session(parse_target(fake_gpu_host.target), pinned, identity=public, timeout=10)
    assert "--identity" in caught.value.hint


def test_the_cli_says_authentication_in_one_line(gpuctl, fake_gpu_host: FakeGpuHost, pinned: Path) -> None:
    result = gpuctl("up", "qwen2.5-7b", "--host", fake_gpu_host.target, "-y")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "--identity" in line and "cannot reach" not in line
