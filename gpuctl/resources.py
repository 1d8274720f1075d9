"""Access to the data folders shipped with gpuctl: providers/, recipes/, templates/.

In a wheel they live under ``gpuctl/_data``; in a source checkout (editable install) they are the
top-level folders of the repository.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

DATA_FOLDERS = ("providers", "recipes", "templates")


def data_dir(folder: str) -> Traversable:
    """The shipped data folder ``folder`` (one of DATA_FOLDERS)."""
    if folder not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {folder!r}")
    packaged = files("gpuctl") / "_data" / folder
    if packaged.is_dir():
        return packaged
    return Path(str(files("gpuctl"))).parent / folder


def read_text(folder: str, name: str) -> str:
    """The text of one shipped data file."""
    return (data_dir(folder) / name).read_text(encoding="utf-8")


def list_files(folder: str, suffix: str = "") -> list[str]:
    """Names of the shipped files in ``folder`` ending with ``suffix``, sorted."""
    return sorted(p.name for p in data_dir(folder).iterdir() if p.is_file() and p.name.endswith(suffix))
