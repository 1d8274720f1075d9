"""The wheel carries the data folders, and an installed wheel reads them through importlib.resources."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    (built,) = out.glob("gpuctl-*.whl")
    return built


def test_wheel_contains_data_folders(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("providers", "recipes", "templates"):
        shipped = {n for n in names if n.startswith(f"gpuctl/_data/{folder}/")}
        in_repo = {f"gpuctl/_data/{folder}/{p.relative_to(ROOT / folder)}"
                   for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert in_repo and shipped == in_repo
    assert "gpuctl/cli/__init__.py" in names
    for package in ("runpod", "lambda_cloud", "aws"):  # each provider's catalog is its own package data
        assert f"gpuctl/providers/{package}/catalog.yaml" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[gpuctl.providers]" in text and "runpod = gpuctl.providers.runpod.provider:RunPodProvider" in text


def test_installed_wheel_reads_packaged_data(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import gpuctl.resources as r, gpuctl.catalog as c; "
            "from gpuctl.providers.runpod.provider import RunPodProvider as p; "
            "print(r.data_dir('providers')); print(c.resolve_gpu('l40s')); print(p.catalog().provider)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    location, gpu, catalog = result.stdout.split()
    assert location == str(target / "gpuctl" / "_data" / "providers")
    assert (gpu, catalog) == ("L40S", "runpod")
