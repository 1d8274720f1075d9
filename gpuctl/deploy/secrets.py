"""Per-deployment secrets on this machine: ``.gpuctl/secrets/NAME.env`` (0600, in a 0700 directory).

Only the engine API key lives there; the state file never holds a secret. ``gpuctl env NAME`` is the
one command that prints it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gpuctl.fsutil import atomic_write

SECRETS_DIR = "secrets"
API_KEY_VAR = "OPENAI_API_KEY"


def secrets_dir(state_dir: Path) -> Path:
    path = state_dir / SECRETS_DIR
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def secret_file(state_dir: Path, name: str) -> Path:
    return state_dir / SECRETS_DIR / f"{name}.env"


def create_api_key(state_dir: Path, name: str) -> str:
    """A new random API key for deployment ``name``, stored 0600 before it is used anywhere.

    StateWriteError (exit 2) when the project directory cannot take it.
    """
    from gpuctl.state import StateWriteError

    key = "gpuctl-" + secrets.token_urlsafe(32)
    path = secret_file(state_dir, name)
    try:
        atomic_write(secrets_dir(state_dir) / path.name, f"{API_KEY_VAR}={key}\n", mode=0o600)
    except OSError as exc:
        raise StateWriteError(path, exc) from exc
    return key


def read_api_key(state_dir: Path, name: str) -> str | None:
    """The stored API key of deployment ``name``, or None when it has none."""
    path = secret_file(state_dir, name)
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == API_KEY_VAR and value:
            return value
    return None


def remove_secrets(state_dir: Path, name: str) -> None:
    secret_file(state_dir, name).unlink(missing_ok=True)
