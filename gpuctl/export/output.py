"""Manifests as YAML: one stream for stdout, or one file per object in a directory.

A Secret holding a value only ever goes to a file of mode 0600, never to a stream; the directory
gets a .gitignore for it, and a later export into the same directory keeps the key it holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpuctl.errors import UsageError
from gpuctl.export.k8s import Manifest
from gpuctl.fsutil import atomic_write

GITIGNORE = "# the API key Secret: keep it out of version control\nsecret-*.yaml\n"


def to_yaml(documents: Sequence[dict[str, Any]], header: str = "") -> str:
    """A multi-document YAML stream, ``header`` lines as comments on top."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # spell shared parts out: no &anchors / *aliases in a manifest

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    body = "---\n".join(yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=1000)
                         for doc in documents)
    return comment + body


def stream(manifests: Sequence[Manifest], header: str = "") -> str:
    """The manifests for stdout; a Secret with a value in it is refused, not printed."""
    if any(m.secret for m in manifests):
        raise ValueError("a Secret's value is never printed")
    return to_yaml([m.document for m in manifests], header)


def write_directory(directory: Path, manifests: Sequence[Manifest], header: str = "") -> list[Path]:
    """One file per manifest under ``directory`` (created), secrets 0600; exit 2 when it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for manifest in manifests:
            path = directory / manifest.file
            atomic_write(path, to_yaml([manifest.document], header), mode=0o600 if manifest.secret else 0o644)
            paths.append(path)
        if any(m.secret for m in manifests):
            atomic_write(directory / ".gitignore", GITIGNORE)
    except OSError as exc:
        raise UsageError(f"cannot write the manifests to {directory}: {exc.strerror or exc}",
                         "pass -o with a directory you can write, or -o - for stdout") from exc
    return paths


def directory_api_key(directory: Path, file: str, variable: str) -> str:
    """The API key for an export into ``directory``: the one a previous export wrote there (clients keep
    working), else a new random one."""
    return existing_api_key(directory, file, variable) or secrets.token_urlsafe(32)


def existing_api_key(directory: Path, file: str, variable: str) -> str | None:
    """The API key a previous export wrote to ``directory``; None when there is none."""
    import yaml

    path = directory / file
    if not directory.is_dir():
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", f"remove {path} to get a new API key") from exc
    value = document.get("stringData", {}).get(variable) if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None
