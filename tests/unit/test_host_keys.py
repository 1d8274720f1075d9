"""The per-project key pair and the pinned known_hosts file."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpuctl.host.hostkeys import known_hosts_name, pin_host_key, pinned_known_hosts
from gpuctl.host.keys import ensure_project_key, fingerprint_sha256


def _ed25519_key() -> paramiko.Ed25519Key:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_project_key_is_generated_private_and_in_openssh_form(isolated: Path) -> None:
    state = isolated / ".gpuctl"
    key = ensure_project_key(state, comment="gpuctl-demo")
    assert key.private_path == state / "ssh" / "id_ed25519"
    assert _mode(key.private_path) == 0o600
    assert _mode(state / "ssh") == 0o700
    kind, blob, comment = key.public_key.split()
    assert (kind, comment) == ("ssh-ed25519", "gpuctl-demo")
    assert key.public_path.read_text() == key.public_key + "\n"
    # paramiko (what connects) reads the private key and derives the same public key
    loaded = paramiko.Ed25519Key.from_private_key_file(str(key.private_path))
    assert loaded.get_base64() == blob
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
    assert key.fingerprint == f"SHA256:{digest}"


def test_fingerprint_matches_ssh_keygen(isolated: Path) -> None:
    key = ensure_project_key(isolated / ".gpuctl")
    try:
        listed = subprocess.run(["ssh-keygen", "-lf", str(key.public_path)], capture_output=True, text=True,
                                check=True).stdout
    except FileNotFoundError:
        pytest.skip("ssh-keygen is not installed")
    assert listed.split()[1] == key.fingerprint


def test_second_call_returns_the_same_key(isolated: Path) -> None:
    first = ensure_project_key(isolated / ".gpuctl")
    again = ensure_project_key(isolated / ".gpuctl")
    assert again == first


def test_concurrent_creation_agrees_on_one_key(isolated: Path) -> None:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_project_key(isolated / ".gpuctl").public_key))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert sorted(p.name for p in (isolated / ".gpuctl" / "ssh").iterdir()) == ["id_ed25519", "id_ed25519.pub"]


def test_fingerprint_format() -> None:
    assert fingerprint_sha256(b"abc") == "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"


def test_known_hosts_names_follow_openssh() -> None:
    assert known_hosts_name("203.0.113.7", 22) == "203.0.113.7"
    assert known_hosts_name("203.0.113.7", 2222) == "[203.0.113.7]:2222"


def test_pinning_appends_and_keeps_the_file_private(isolated: Path) -> None:
    pinned = pinned_known_hosts(isolated / ".gpuctl")
    first, second = _ed25519_key(), paramiko.ECDSAKey.generate()
    pin_host_key(pinned, "203.0.113.7", first)
    pin_host_key(pinned, "[203.0.113.8]:2222", second)
    assert pinned.read_text().splitlines() == [
        f"203.0.113.7 ssh-ed25519 {first.get_base64()}",
        f"[203.0.113.8]:2222 {second.get_name()} {second.get_base64()}",
    ]
    assert _mode(pinned) == 0o600
    keys = paramiko.HostKeys(str(pinned))
    assert keys.lookup("[203.0.113.8]:2222")[second.get_name()] == second
