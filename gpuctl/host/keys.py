"""The per-project SSH key pair (``.gpuctl/ssh/id_ed25519``) that gpuctl installs on the hosts it rents."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

SSH_DIR = "ssh"
KEY_FILE = "id_ed25519"


class ProjectKey(BaseModel):
    """Where the key pair lives, and its public half in OpenSSH form (what providers are given)."""

    private_path: Path
    public_path: Path
    public_key: str
    fingerprint: str


def fingerprint_sha256(key_blob: bytes) -> str:
    """The fingerprint of a public key blob the way OpenSSH prints it (``SHA256:...``, no padding)."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode("ascii")
    return f"SHA256:{digest.rstrip('=')}"


def ssh_dir(state_dir: Path) -> Path:
    """``.gpuctl/ssh``: created private (0700) because it holds a private key and the pinned host keys."""
    path = state_dir / SSH_DIR
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def ensure_project_key(state_dir: Path, comment: str = "gpuctl") -> ProjectKey:
    """The project's key pair, generated on first use (ed25519, private key 0600).

    Two gpuctl processes may race to create it: the private key is written to a temporary file and
    hard-linked into place, so exactly one wins and the other reads the winner's key.
    """
    directory = ssh_dir(state_dir)
    private_path = directory / KEY_FILE
    if not private_path.exists():
        _create_private_key(private_path)
    return _describe(private_path, comment)


def _create_private_key(private_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    fd, name = tempfile.mkstemp(prefix=f".{private_path.name}.", dir=private_path.parent)  # 0600 from the start
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        with contextlib.suppress(FileExistsError):  # another process won the race: its key is the key
            os.link(tmp, private_path)
    finally:
        tmp.unlink(missing_ok=True)


def _describe(private_path: Path, comment: str) -> ProjectKey:
    from cryptography.hazmat.primitives import serialization

    private_key = serialization.load_ssh_private_key(private_path.read_bytes(), password=None)
    public = private_key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    public_key = f"{public} {comment}"
    public_path = private_path.with_name(private_path.name + ".pub")
    if not public_path.exists() or public_path.read_text(encoding="utf-8").strip() != public_key:
        public_path.write_text(public_key + "\n", encoding="utf-8")
    blob = base64.b64decode(public.split()[1])
    return ProjectKey(private_path=private_path, public_path=public_path, public_key=public_key,
                      fingerprint=fingerprint_sha256(blob))
