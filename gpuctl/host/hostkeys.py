"""Host-key policy: trust what ``~/.ssh/known_hosts`` or gpuctl's own pinned file says, nothing else.

gpuctl pins the key of every host it reaches in ``.gpuctl/ssh/known_hosts`` (per project). A host
missing from every file raises UnknownHostKeyError with the fingerprint, unless the caller accepts it
(``--accept-host-key``, or ``StrictHostKeyChecking accept-new``/``no`` in ``~/.ssh/config``); then it
is pinned. A host presenting another key than the one on file is always refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpuctl.fsutil import atomic_write
from gpuctl.host.errors import HostKeyChangedError, UnknownHostKeyError
from gpuctl.host.keys import fingerprint_sha256, ssh_dir

KNOWN_HOSTS_FILE = "known_hosts"
# ~/.ssh/config values of StrictHostKeyChecking under which ssh itself adds unknown keys silently
_ACCEPTING = {"no", "off", "accept-new"}


def pinned_known_hosts(state_dir: Path) -> Path:
    """The project's own known_hosts file (``.gpuctl/ssh/known_hosts``)."""
    return ssh_dir(state_dir) / KNOWN_HOSTS_FILE


def known_hosts_name(host: str, port: int) -> str:
    """The name a known_hosts line uses for a destination, the way OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


def accepts_new_keys(strict_host_key_checking: str) -> bool:
    return strict_host_key_checking.lower() in _ACCEPTING


def key_fingerprint(key: Any) -> str:
    """OpenSSH-style fingerprint of a paramiko key."""
    return fingerprint_sha256(key.asbytes())


class PinningPolicy:
    """paramiko's missing-host-key hook: raise with the fingerprint, or pin when accepting."""

    def __init__(self, pinned_file: Path, accept: bool) -> None:
        self.pinned_file = pinned_file
        self.accept = accept

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        if not self.accept:
            raise UnknownHostKeyError(hostname, key.get_name(), key_fingerprint(key))
        pin_host_key(self.pinned_file, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


def pin_host_key(pinned_file: Path, hostname: str, key: Any) -> None:
    """Append ``hostname key`` to the pinned file (0600), keeping every other line as it was."""
    existing = pinned_file.read_text(encoding="utf-8") if pinned_file.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write(pinned_file, f"{existing}{hostname} {key.get_name()} {key.get_base64()}\n", mode=0o600)


def unpin_host_key(pinned_file: Path, hostname: str) -> bool:
    """Forget what is pinned for ``hostname`` (a rented machine that is gone: its address will be reused)."""
    if not pinned_file.is_file():
        return False
    lines = pinned_file.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if hostname not in line.split(" ", 1)[0].split(",")]
    if len(kept) == len(lines):
        return False
    atomic_write(pinned_file, "".join(kept), mode=0o600)
    return True


def load_known_hosts(client: Any, user_files: list[Path], pinned_file: Path) -> None:
    """Give a paramiko SSHClient the user's known_hosts files (read only) and the pinned file."""
    for path in user_files:
        if path.is_file() and os.access(path, os.R_OK):
            client.load_system_host_keys(str(path))
    if pinned_file.is_file():
        client.load_host_keys(str(pinned_file))


def changed_key_error(hostname: str, exc: Any) -> HostKeyChangedError:
    """Translate paramiko's BadHostKeyException into gpuctl's hard error."""
    return HostKeyChangedError(hostname, exc.key.get_name(), key_fingerprint(exc.key),
                               key_fingerprint(exc.expected_key))
