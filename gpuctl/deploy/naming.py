"""Names: the project's id, deployment names, idempotency tokens and engine container names."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from gpuctl.errors import UsageError
from gpuctl.models.engine import container_name as container_name  # lives with the engine: providers name it too

PROJECT_ID_FILE = "project-id"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_NAME_HINT = "use 1-48 lowercase letters, digits and '-', starting with a letter or digit"


def project_id(state_dir: Path) -> str:
    """This project's random id (``.gpuctl/project-id``), created on first use; tags carry it.

    Two processes may race to create it: each writes a temp file and hard-links it into place, so
    exactly one id wins and both read it back. StateWriteError (exit 2) when the directory cannot take it.
    """
    from gpuctl.state import StateWriteError

    path = state_dir / PROJECT_ID_FILE
    if not path.exists():
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{PROJECT_ID_FILE}.", dir=state_dir)
        except OSError as exc:
            raise StateWriteError(path, exc) from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_hex(8) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError as exc:
            raise StateWriteError(path, exc) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes ('hf:Qwen/Qwen2.5-7B' -> 'qwen2-5-7b')."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_name(model: str, gpu: str) -> str:
    """``<model>-<gpu>-<4 hex>``, e.g. ``llama-3-8b-l40s-3f9a``."""
    model_part = slug(model.rsplit("/", 1)[-1].removeprefix("hf:"))[:28].strip("-") or "model"
    gpu_part = slug(gpu)[:14].strip("-") or "gpu"
    return f"{model_part}-{gpu_part}-{secrets.token_hex(2)}"


def check_name(name: str) -> str:
    """``name`` if it is a valid deployment name (it ends up in container, instance and file names)."""
    if not NAME_RE.match(name):
        raise UsageError(f"'{name}' is not a valid deployment name", _NAME_HINT)
    return name


def idempotency_token(project: str, name: str, attempt: int, incarnation: datetime) -> str:
    """Same record and attempt, same token: a retried launch can never create a second instance.

    ``incarnation`` (the record's creation time) tells apart two deployments that reuse a name, so a
    new ``up`` never adopts the instance of an earlier one that is still being torn down.
    """
    digest = hashlib.sha256(f"{project}:{name}:{attempt}:{incarnation.isoformat()}".encode()).hexdigest()
    return f"gpuctl-{digest[:40]}"

