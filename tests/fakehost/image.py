"""The fake engine image: this machine's Python plus mock_openai, served by a registry under the engines' names.

The image is built without docker: a root filesystem tar (the host's python3, the libraries ``ldd``
lists, the stdlib, busybox, the engine shim and mock_openai) becomes one uncompressed layer, and the
layer, an image config and a manifest are written straight into a ``docker-registry`` storage
directory. Each fake host's registry serves a hard-linked copy, so ``docker pull vllm/vllm-openai:TAG``
works offline through dockerd's ``--registry-mirror``. This takes about 1 s once per test session;
``docker import`` plus ``docker push`` (which gzips the layer) took 6 s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from pathlib import Path

from gpuctl.engines import sglang, vllm
from gpuctl.providers.runpod.seeding import SEED_IMAGE

HERE = Path(__file__).resolve().parent
MOCK_SERVER = HERE.parent / "standins" / "mock_openai.py"
ENGINE_SHIM = HERE / "engine_shim.py"
ENGINE_METRICS = HERE / "engine_metrics.py"
ENGINE_SPEED = HERE / "engine_speed.py"
#: the image name gpuctl's vLLM engine spec runs; the fake hosts serve the fake image under it
ENGINE_IMAGE = vllm.IMAGE
#: every Docker Hub engine image the fake hosts serve (the same root filesystem), with its entrypoint
#: (TGI's lives on ghcr.io, which no mirror reaches: tests tag it with FakeGpuHost.preload)
ENGINE_IMAGES: dict[str, list[str] | None] = {vllm.IMAGE: ["vllm", "serve"], sglang.IMAGE: None}
#: the Python image RunPod's weights-seeding pods run; the same root filesystem, started as ``python3``
PYTHON_IMAGE = SEED_IMAGE
APP_DIR = "/opt/fake-engine"
BUSYBOX = Path("/usr/bin/busybox")
_BUSYBOX_TOOLS = ("sh", "cat", "ls", "env", "sleep", "echo", "ps", "wget")
# stdlib parts no OpenAI stand-in needs; skipping them halves the image
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
                "dist-packages", "pydoc_data", "distutils", "__phello__"}
_SKIP_EXTENSIONS = ("_tkinter", "_curses", "_dbm", "_gdbm", "xxlimited", "_test", "_xx")
#: what aiohttp imports: a real vLLM image ships it, and 'gpuctl bench --from host' runs on it
_SITE_PACKAGES = ("aiohttp", "aiohappyeyeballs", "aiosignal", "attr", "frozenlist", "idna", "multidict",
                  "propcache", "yarl", "typing_extensions.py")
_CREATED = "2026-01-01T00:00:00Z"


def build_rootfs(dest: Path) -> Path:
    """Write the image's root filesystem as a tar file at ``dest``."""
    exe = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = stdlib / "lib-dynload"
    extensions = [p for p in dynload.glob("*.so") if not p.name.startswith(_SKIP_EXTENSIONS)]
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode in (("tmp", 0o1777), ("root", 0o700), ("etc", 0o755), ("usr/local/bin", 0o755)):
            _add_dir(tar, directory, mode)
        _add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        _add_bytes(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        scratch = dest.with_suffix(".strip")
        scratch.mkdir(exist_ok=True)
        for library in _shared_libraries([exe, *extensions]):
            tar.add(_slim(Path(os.path.realpath(library)), scratch), arcname=library.lstrip("/"), recursive=False)
        tar.add(exe, arcname=str(exe).lstrip("/"))
        tar.add(stdlib, arcname=str(stdlib).lstrip("/"), filter=_stdlib_filter(stdlib))
        for extension in extensions:
            tar.add(_slim(extension, scratch), arcname=str(extension).lstrip("/"))
        site = Path(sysconfig.get_paths()["purelib"])
        for package in _SITE_PACKAGES:
            # next to the stand-in, on the image's PYTHONPATH: this machine's site directory may be a venv's,
            # which the image's python would not search
            tar.add(site / package, arcname=f"{APP_DIR.lstrip('/')}/{package}", filter=_no_bytecode)
        shutil.rmtree(scratch)
        _add_link(tar, "usr/bin/python3", str(exe))
        if BUSYBOX.is_file():
            tar.add(BUSYBOX, arcname="bin/busybox")
            for tool in _BUSYBOX_TOOLS:
                _add_link(tar, f"bin/{tool}", "busybox")
        tar.add(MOCK_SERVER, arcname=f"{APP_DIR.lstrip('/')}/mock_openai.py")
        tar.add(ENGINE_SHIM, arcname=f"{APP_DIR.lstrip('/')}/engine_shim.py")
        tar.add(ENGINE_METRICS, arcname=f"{APP_DIR.lstrip('/')}/engine_metrics.py")
        tar.add(ENGINE_SPEED, arcname=f"{APP_DIR.lstrip('/')}/engine_speed.py")
        launcher = (f"#!/usr/bin/python3\nimport runpy\n"
                    f"runpy.run_path('{APP_DIR}/engine_shim.py', run_name='__main__')\n")
        for name in ("vllm", "text-generation-launcher"):
            _add_bytes(tar, f"usr/local/bin/{name}", launcher.encode(), mode=0o755)
        # SGLang runs as 'python3 -m sglang.launch_server': a package of that name on PYTHONPATH
        _add_bytes(tar, f"{APP_DIR.lstrip('/')}/sglang/__init__.py", b"")
        _add_bytes(tar, f"{APP_DIR.lstrip('/')}/sglang/launch_server.py",
                   b"import sys\n\nimport engine_shim\n\nsys.exit(engine_shim.main())\n")
    return dest


def _slim(path: Path, scratch: Path) -> Path:
    """A copy of a large shared object without debug symbols (libpython: 23 MB -> 6 MB), when strip exists."""
    strip = shutil.which("strip")
    if strip is None or path.stat().st_size < 1 << 20:
        return path
    slim = scratch / path.name
    done = subprocess.run([strip, "--strip-unneeded", "-o", str(slim), str(path)], capture_output=True, check=False)
    return slim if done.returncode == 0 else path


def _shared_libraries(objects: list[Path]) -> set[str]:
    out = subprocess.run(["ldd", *map(str, objects)], capture_output=True, text=True, check=False).stdout
    return set(re.findall(r"^\s+(?:\S+ => )?(/\S+) \(0x", out, re.MULTILINE))


def _stdlib_filter(stdlib: Path) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    prefix = str(stdlib).lstrip("/") + "/"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        relative = info.name[len(prefix):] if info.name.startswith(prefix) else ""
        top = relative.split("/", 1)[0]
        if top in _SKIP_STDLIB or top.startswith("config-") or info.name.endswith((".opt-1.pyc", ".opt-2.pyc")):
            return None
        if top == "lib-dynload" and not info.isdir():  # extension modules are added one by one, stripped
            return None
        return info

    return keep


def _no_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name else info


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def registry_repository(image: str) -> tuple[str, str]:
    """('vllm/vllm-openai', 'v0.11.0') for a Docker Hub image name; other registries cannot be mirrored."""
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        raise ValueError(f"{image} is not on Docker Hub; a registry mirror cannot serve it (tag it locally)")
    return (name if "/" in name else f"library/{name}"), tag


def write_registry(storage: Path, rootfs: Path, image: str, *, entrypoint: list[str] | None = None,
                   cmd: list[str] | None = None) -> str:
    """Store ``rootfs`` as image ``image`` in a docker-registry storage directory; returns the manifest digest.

    ``entrypoint`` and ``cmd`` start it, as in a Dockerfile (the engine image: ``vllm serve``)."""
    repository, tag = registry_repository(image)
    layer = rootfs.read_bytes()
    layer_digest = _put_blob(storage, layer)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": _CREATED,
        "config": {**({"Entrypoint": entrypoint} if entrypoint else {}), **({"Cmd": cmd} if cmd else {}),
                   "WorkingDir": "/",
                   "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={APP_DIR}",
                           "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": _CREATED, "created_by": "tests/fakehost/image.py"}],
    }, sort_keys=True).encode()
    config_digest = _put_blob(storage, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": len(layer),
                    "digest": layer_digest}],
    }, sort_keys=True).encode()
    manifest_digest = _put_blob(storage, manifest)
    repo = storage / "docker/registry/v2/repositories" / repository
    for digest in (layer_digest, config_digest):
        _link(repo / "_layers" / _digest_path(digest), digest)
    _link(repo / "_manifests/revisions" / _digest_path(manifest_digest), manifest_digest)
    _link(repo / "_manifests/tags" / tag / "current", manifest_digest)
    _link(repo / "_manifests/tags" / tag / "index" / _digest_path(manifest_digest), manifest_digest)
    return manifest_digest


def copy_registry(seed: Path, storage: Path) -> None:
    """A private copy of a registry's storage; blob data (content-addressed, never rewritten) is hard-linked."""

    def link_or_copy(src: str, dst: str) -> None:
        if os.path.basename(src) == "data":
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(seed, storage, copy_function=link_or_copy)


def _put_blob(storage: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = storage / "docker/registry/v2/blobs" / _digest_path(digest, shard=True) / "data"
    if not path.exists():  # content-addressed: images sharing a layer store it once
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return digest


def _digest_path(digest: str, shard: bool = False) -> str:
    algorithm, hexdigest = digest.split(":", 1)
    return f"{algorithm}/{hexdigest[:2]}/{hexdigest}" if shard else f"{algorithm}/{hexdigest}"


def _link(directory: Path, digest: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "link").write_text(digest)
