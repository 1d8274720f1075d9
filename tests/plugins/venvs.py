"""A separate virtual environment with plugin packages installed, as a user would install them.

It sees this environment's packages (gpuctl itself, editable, and its dependencies) through a
``.pth`` file, so nothing is downloaded and it takes seconds; the plugins are installed into it
alone (``pip install --no-deps --no-build-isolation``: hatchling comes from the test extras), so this
process and the rest of the suite never see them.
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path


def plugin_venv(where: Path, *packages: Path) -> Path:
    """A venv at ``where`` with ``packages`` installed; returns its Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    parents = [*site.getsitepackages(), site.getusersitepackages()]
    Path(own, "zz_parent_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in parents if Path(path).is_dir()))
    for package in packages:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", str(package)], check=True, capture_output=True, timeout=300)
    return python


def gpuctl(python: Path, *args: str, env: dict[str, str], timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``gpuctl ARGS`` run by ``python`` (``python -m gpuctl``: the real command, as a user runs it)."""
    return subprocess.run([str(python), "-m", "gpuctl", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
