"""Small filesystem helpers: atomic writes, private files, and reading the text files users edit."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new content, never a torn file.

    ``durable`` also fsyncs the file and its directory, so the write survives a power cut; caches that
    can be rebuilt skip it (an fsync costs tens of milliseconds on some disks).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def read_text_file(path: Path) -> str:
    """A file the user edits, as text: unreadable or not UTF-8 (binary garbage) is bad input naming it (exit 2)."""
    from gpuctl.errors import ConfigError, FileSystemError

    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileSystemError.from_os_error(exc, "read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})",
                          f"fix or remove {path}") from exc


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
